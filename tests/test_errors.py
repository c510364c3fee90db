"""The error convention (spacy_clinie/errors.py): components raise coded
messages, every code is defined once and formats."""
import ast
import re
from pathlib import Path

from spacy_clinie.errors import Errors, Warnings

PIPELINE = Path(__file__).resolve().parents[1] / "spacy_clinie" / "pipeline"


def uncoded_raises(source: str):
    """``raise ValueError(...)`` / ``raise TypeError(...)`` whose message is
    not an ``Errors.Exxx`` (formatted or not)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            if isinstance(func, ast.Name) and func.id in ("ValueError", "TypeError") and node.exc.args:
                if "Errors.E" not in ast.unparse(node.exc.args[0]):
                    out.append((node.lineno, ast.unparse(node.exc)))
    return out


def test_components_raise_coded_errors():
    found = {p.name: uncoded_raises(p.read_text(encoding="utf8")) for p in sorted(PIPELINE.glob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_check_sees_a_plain_message():
    assert uncoded_raises('def f(x):\n    raise ValueError(f"bad {x}")\n') == [(2, "ValueError(f'bad {x}')")]
    assert uncoded_raises("def f(x):\n    raise ValueError(Errors.E101.format(x=x))\n") == []


def test_codes_are_unique_and_prefixed():
    for cls, letter in ((Errors, "E"), (Warnings, "W")):
        source = Path(__file__).resolve().parents[1].joinpath("spacy_clinie", "errors.py").read_text(encoding="utf8")
        codes = re.findall(rf"^    ({letter}\d{{3}}) = ", source, re.M)
        assert len(codes) == len(set(codes)), "a code is defined twice"
        for code in codes:
            assert getattr(cls, code).startswith(f"[{code}] ")
