"""Prompt and response strings that carry what a backend needs besides text.

spacy-llm passes prompts to models and responses back to tasks as opaque
objects. Ours are ``str`` subclasses, so any spacy-llm model still works with
the clinie task (it just sees the text), while our backends read the JSON
schema for constrained decoding off the prompt and attach the generated
tokens' log-probabilities to the response (seed 002's label confidence).
"""
from typing import Any, Dict, List, Optional


class Prompt(str):
    """A chat prompt: ``system`` + ``self`` (the user message) and, where the
    backend supports it, a JSON schema or a GBNF grammar (llama.cpp) that
    constrains decoding. ``unit``: the text the prompt asks about, for
    backends that answer from a reference instead of reading the prompt
    (``clinie.SimulatedAnnotator.v1``)."""

    system: Optional[str]
    json_schema: Optional[Dict[str, Any]]
    grammar: Optional[str]
    unit: Optional[str]

    def __new__(
        cls,
        text: str,
        *,
        system: Optional[str] = None,
        json_schema: Optional[Dict[str, Any]] = None,
        grammar: Optional[str] = None,
        unit: Optional[str] = None,
    ) -> "Prompt":
        obj = super().__new__(cls, text)
        obj.system = system
        obj.json_schema = json_schema
        obj.grammar = grammar
        obj.unit = unit
        return obj


class TokenLogprob(dict):
    """``{"token": str, "logprob": float, "top": {token: logprob}}``."""


class Response(str):
    """Generated text plus, when the backend exposes them, per-token
    log-probabilities (``tokens``) and the backend's finish reason."""

    tokens: Optional[List[TokenLogprob]]
    finish_reason: Optional[str]

    def __new__(cls, text: str, *, tokens: Optional[List[Dict[str, Any]]] = None, finish_reason: Optional[str] = None) -> "Response":
        obj = super().__new__(cls, text)
        obj.tokens = [TokenLogprob(t) for t in tokens] if tokens is not None else None
        obj.finish_reason = finish_reason
        return obj
