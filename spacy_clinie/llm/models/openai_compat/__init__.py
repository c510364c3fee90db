from .registry import make_openai_compatible
from .model import OpenAICompatibleModel

__all__ = ["OpenAICompatibleModel", "make_openai_compatible"]
