"""Prompt templates: the Jinja files shipped in ``spacy_clinie/llm/templates``
or a user's own ``.jinja`` path, rendered in jinja2's sandbox."""
from importlib.resources import files
from pathlib import Path

import jinja2.sandbox


def read_template(name: str) -> str:
    """A template shipped in ``spacy_clinie/llm/templates`` by name, or a
    path to the user's own Jinja file."""
    if Path(name).suffix == ".jinja" and Path(name).exists():
        return Path(name).read_text(encoding="utf8")
    return files("spacy_clinie.llm").joinpath("templates", name).read_text(encoding="utf8")


def load_template(name: str) -> jinja2.Template:
    return jinja2.sandbox.SandboxedEnvironment().from_string(read_template(name))
