from .registry import make_llamacpp
from .model import LlamaCppModel

__all__ = ["LlamaCppModel", "make_llamacpp"]
