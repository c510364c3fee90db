"""Any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server,
llama-cpp-python's server) as a spacy-llm model, over plain HTTP.

Constrained decoding differs per server, so ``constrained`` names the
dialect: ``json_schema`` (OpenAI, vLLM >= 0.6, llama.cpp server),
``json_object`` (llama-cpp-python's server: ``{"type": "json_object",
"schema": ...}`` and a ``grammar`` field), ``guided`` (vLLM's
``guided_json`` / ``guided_grammar``), or ``none``."""
import os
import time
from typing import Any, Dict, Iterable, Optional

import requests

from ...types import Response
from ..base import chat_messages, token_logprobs

DIALECTS = ("json_schema", "json_object", "guided", "none")


class OpenAICompatibleModel:
    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key_env: Optional[str],
        temperature: float,
        max_tokens: int,
        seed: Optional[int],
        top_logprobs: int,
        constrained: str,
        timeout: float,
        max_tries: int,
        context_length: Optional[int],
    ) -> None:
        if constrained not in DIALECTS:
            raise ValueError(f"constrained must be one of {DIALECTS}, got {constrained!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.top_logprobs = top_logprobs
        self.constrained = constrained
        self.timeout = timeout
        self.max_tries = max_tries
        self._context_length = context_length
        self._session = requests.Session()

    @property
    def context_length(self) -> Optional[int]:
        return self._context_length

    def body(self, prompt: Any) -> Dict[str, Any]:
        body: Dict[str, Any] = {
            "model": self.model,
            "messages": chat_messages(prompt),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if self.top_logprobs > 0:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        schema = getattr(prompt, "json_schema", None)
        grammar = getattr(prompt, "grammar", None)
        if self.constrained == "json_schema" and schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        elif self.constrained == "json_object":
            if schema is not None:
                body["response_format"] = {"type": "json_object", "schema": schema}
            elif grammar:
                body["grammar"] = grammar
        elif self.constrained == "guided":
            if schema is not None:
                body["guided_json"] = schema
            elif grammar:
                body["guided_grammar"] = grammar
        return body

    def generate(self, prompt: Any) -> Response:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = self.body(prompt)
        error: Optional[str] = None
        for attempt in range(self.max_tries):
            try:
                r = self._session.post(self.url, json=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as e:
                error = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    choice = r.json()["choices"][0]
                    logprobs = (choice.get("logprobs") or {}).get("content")
                    text = (choice.get("message") or {}).get("content") or ""
                    return Response(text, tokens=token_logprobs(logprobs), finish_reason=choice.get("finish_reason"))
                error = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code < 500 and r.status_code != 429:
                    break  # a bad request does not get better by retrying
            time.sleep(min(2**attempt, 10))
        raise ConnectionError(f"{self.url}: no answer after {self.max_tries} tries ({error})")

    def __call__(self, prompts: Iterable[Iterable[Any]]) -> Iterable[Iterable[str]]:
        return [[self.generate(p) for p in doc_prompts] for doc_prompts in prompts]
