from .model import OpenAICompatibleModel
from .registry import make_openai_compatible

__all__ = ["OpenAICompatibleModel", "make_openai_compatible"]
