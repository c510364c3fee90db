"""Code both LLM backends share (cf. ``spacy_llm/models/rest/base.py``): the
chat messages of a prompt and OpenAI-style token log-probabilities, which
llama-cpp-python and OpenAI-compatible servers both return."""
from typing import Any, Dict, List, Optional


def chat_messages(prompt: Any) -> List[Dict[str, str]]:
    """The chat messages of a prompt: its ``system`` text (task prompts carry
    one) and the prompt itself as the user turn."""
    system = getattr(prompt, "system", None)
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": str(prompt)}]


def token_logprobs(content: Optional[List[Dict[str, Any]]]) -> Optional[List[Dict[str, Any]]]:
    """OpenAI-style ``logprobs.content`` -> ``[{"token", "logprob", "top"}]``."""
    if not content:
        return None
    return [
        {
            "token": t.get("token", ""),
            "logprob": float(t.get("logprob", 0.0)),
            "top": {c["token"]: float(c["logprob"]) for c in (t.get("top_logprobs") or [])},
        }
        for t in content
    ]
