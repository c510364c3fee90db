"""Packaging: a wheel built from the tree ships the data folders (LLM
templates, review templates and static files) and setuptools raises no
package-discovery warnings while building it."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_FILES = (
    "spacy_clinie/llm/templates/ade_correct.v1.jinja",
    "spacy_clinie/review/templates/item.html",
    "spacy_clinie/review/static/review.css",
    "spacy_clinie/review/static/review.js",
)


def test_wheel_ships_package_data_without_discovery_warnings(tmp_path):
    tracked = subprocess.run(
        ["git", "ls-files", "setup.cfg", "pyproject.toml", "README.md", "spacy_clinie"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    src = tmp_path / "src"
    for rel in tracked.stdout.split():
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    # a byte-code cache folder, as any used checkout has, must not become a package
    (src / "spacy_clinie" / "__pycache__").mkdir(exist_ok=True)
    (src / "spacy_clinie" / "__pycache__" / "about.cpython-311.pyc").write_bytes(b"")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), "-v"],
        capture_output=True, text=True,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "absent from the `packages` configuration" not in log
    assert "BuildBackendWarning" not in log and "SetuptoolsDeprecationWarning" not in log
    (wheel,) = (tmp_path / "dist").glob("spacy_clinie-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(DATA_FILES) <= names
    assert not any("__pycache__" in name for name in names)
