"""A local GGUF model through llama-cpp-python, as a spacy-llm model.

Loaded lazily (a pipeline with the corrector switched off never loads it),
decoded under the prompt's JSON schema or GBNF grammar, and returning the
generated tokens' log-probabilities for label confidences."""
import os
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, Optional

from ....util import resolve_model_path
from ...types import Response
from ..base import chat_messages, token_logprobs

CONSTRAINED = ("schema", "none")


@contextmanager
def model_params_override(**fields: Any) -> Iterator[None]:
    """Set ``llama_model_params`` fields that ``Llama()`` has no argument
    for (here ``use_extra_bufts``), by wrapping the defaults it starts from
    while the model loads."""
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def defaults() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    lib.llama_model_default_params = defaults
    try:
        yield
    finally:
        lib.llama_model_default_params = original


class LlamaCppModel:
    def __init__(
        self,
        path: str,
        *,
        n_ctx: int,
        n_threads: Optional[int],
        n_gpu_layers: int,
        main_gpu: int,
        temperature: float,
        max_tokens: int,
        seed: int,
        top_logprobs: int,
        constrained: str,
        repack: bool = False,
    ) -> None:
        if constrained not in CONSTRAINED:
            raise ValueError(f"constrained must be one of {CONSTRAINED}, got {constrained!r}")
        self.path = path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.main_gpu = main_gpu
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.top_logprobs = top_logprobs
        self.constrained = constrained
        self.repack = repack
        self._llm: Any = None
        self._pid: Optional[int] = None

    @property
    def context_length(self) -> int:
        return self.n_ctx

    @property
    def llm(self) -> Any:
        # a forked worker (nlp.pipe n_process) must not share the parent's context
        if self._llm is None or self._pid != os.getpid():
            try:
                from llama_cpp import Llama
            except ImportError as e:  # pragma: no cover - depends on the install
                raise ImportError("clinie.LlamaCpp.v1 needs llama-cpp-python: pip install 'llama-cpp-python[server]'") from e
            path = resolve_model_path(self.path)
            if not os.path.exists(path):
                raise FileNotFoundError(f"GGUF model not found: {path} (from {self.path!r})")
            # llama.cpp's weight repacking ("extra buffer types", AMX on
            # recent Xeons) segfaults in decode with this Q4_1 model in
            # llama-cpp-python 0.3.36 on AMX CPUs (seen on this project's CI
            # machine), so it is off unless asked for
            with model_params_override(use_extra_bufts=self.repack):
                self._llm = Llama(
                    model_path=path,
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_gpu_layers=self.n_gpu_layers,  # -1: all layers on the GPU when llama.cpp was built with one
                    main_gpu=self.main_gpu,
                    seed=self.seed,
                    logits_all=self.top_logprobs > 0,
                    verbose=False,
                )
            self._pid = os.getpid()
        return self._llm

    def generate(self, prompt: Any) -> Response:
        kwargs: Dict[str, Any] = {
            "messages": chat_messages(prompt),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }
        if self.constrained == "schema":
            schema = getattr(prompt, "json_schema", None)
            grammar = getattr(prompt, "grammar", None)
            if schema is not None:
                kwargs["response_format"] = {"type": "json_object", "schema": schema}
            elif grammar:
                from llama_cpp import LlamaGrammar

                kwargs["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
        if self.top_logprobs > 0:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = self.top_logprobs
        out = self.llm.create_chat_completion(**kwargs)
        choice = out["choices"][0]
        logprobs = (choice.get("logprobs") or {}).get("content")
        return Response(choice["message"]["content"] or "", tokens=token_logprobs(logprobs), finish_reason=choice.get("finish_reason"))

    def __call__(self, prompts: Iterable[Iterable[Any]]) -> Iterable[Iterable[str]]:
        return [[self.generate(p) for p in doc_prompts] for doc_prompts in prompts]
