"""spacy-clinie: spaCy components for adverse drug event extraction.

Importing the package registers the Doc/Span extensions and the registered
functions; it does not import torch.
"""
from .about import __version__
from .extensions import MENTIONS_KEY, register_extensions
from . import tokenizer, scoring  # noqa: F401  (registry entries)
from .readers import corpus  # noqa: F401  (registry entries)


def _quiet_loguru() -> None:
    """medspaCy's PyRuSH logs at DEBUG through loguru; keep WARNING and up."""
    try:
        import sys

        from loguru import logger
    except ImportError:  # loguru comes with medspacy; nothing to quiet without it
        return
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


_quiet_loguru()
register_extensions()

__all__ = ["__version__", "MENTIONS_KEY", "register_extensions"]
