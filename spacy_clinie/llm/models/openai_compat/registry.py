from typing import Optional

from spacy_llm.registry import registry

from .model import OpenAICompatibleModel


@registry.llm_models("clinie.OpenAICompatible.v1")
def make_openai_compatible(
    base_url: str = "http://127.0.0.1:8000/v1",
    model: str = "default",
    api_key_env: Optional[str] = "OPENAI_API_KEY",
    temperature: float = 0.1,
    max_tokens: int = 256,
    seed: Optional[int] = 0,
    top_logprobs: int = 5,
    constrained: str = "json_schema",
    timeout: float = 120.0,
    max_tries: int = 3,
    context_length: Optional[int] = None,
) -> OpenAICompatibleModel:
    """A chat model behind an OpenAI-compatible server (vLLM, Ollama,
    llama.cpp / llama-cpp-python server) at ``base_url``. The API key, if
    any, is read from the environment variable ``api_key_env``, never from
    the config. ``constrained``: the server's dialect for constrained
    decoding (json_schema | json_object | guided | none)."""
    return OpenAICompatibleModel(
        base_url,
        model=model,
        api_key_env=api_key_env,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        top_logprobs=top_logprobs,
        constrained=constrained,
        timeout=timeout,
        max_tries=max_tries,
        context_length=context_length,
    )
