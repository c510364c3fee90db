"""spacy-clinie: spaCy components for adverse drug event extraction.

Importing the package is light (no spaCy, no torch), so ``clinie --help``
answers at once. spaCy finds the components, readers, scorers and the
tokenizer through the entry points in setup.cfg, without this import; the
Doc/Span extensions are registered by ``spacy_clinie.extensions`` when it is
imported (every module that reads or writes them does), or by
``register_extensions()``.
"""
from typing import Any

from .about import __version__


def _quiet_loguru() -> None:
    """medspaCy's PyRuSH logs at DEBUG through loguru; keep WARNING and up."""
    try:
        import sys

        from loguru import logger
    except ImportError:  # loguru comes with medspacy; nothing to quiet without it
        return
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def __getattr__(name: str) -> Any:
    """``MENTIONS_KEY`` and ``register_extensions`` on first use (PEP 562),
    so that spaCy is imported only when they are."""
    if name in ("MENTIONS_KEY", "register_extensions"):
        from . import extensions

        return getattr(extensions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_quiet_loguru()

__all__ = ["__version__", "MENTIONS_KEY", "register_extensions"]
