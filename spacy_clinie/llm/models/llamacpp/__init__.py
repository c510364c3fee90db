from .model import LlamaCppModel
from .registry import make_llamacpp

__all__ = ["LlamaCppModel", "make_llamacpp"]
