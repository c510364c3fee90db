"""`clinie adapt` (seed 001's SALA loop) with a tiny trained tagger and the
real local GGUF model: two iterations, killed with SIGKILL mid-run and
resumed, each target annotated once per iteration."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy

from ..pipeline.test_soft_prompt_tagger import build, train

TEXTS = [
    "Patients reported nausea and severe headache after the first dose. Dizziness was also seen.",
    "The most common adverse reactions were rash, fatigue and diarrhea. Take with food.",
    "Hepatotoxicity was seen in rats at high doses. Monitor liver enzymes monthly.",
    "Anaphylaxis and angioedema have been reported. Vomiting occurred in two patients.",
]


@pytest.fixture(scope="module")
def tiny_tagger(tmp_path_factory):
    nlp = build()
    train(nlp, n_iter=15)
    path = tmp_path_factory.mktemp("adapt") / "model"
    nlp.to_disk(path)
    return path


def adapt_cmd(model: Path, target: Path, out: Path):
    return [
        sys.executable, "-m", "spacy_clinie", "adapt", str(model), str(target), str(out),
        "--k", "3", "--n-iter", "2", "--epochs", "1", "--tau", "0", "--rehearsal", "1", "--no-progress",
    ]


def test_adapt_two_iterations_survive_sigkill(tiny_tagger, tmp_path):
    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    out = tmp_path / "run"
    state_path = out / "state.json"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(adapt_cmd(tiny_tagger, target, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if state_path.exists():
            try:
                state = json.loads(state_path.read_text())
            except ValueError:
                state = {}
            if state.get("stage") in ("finetune", "filter") or state.get("iteration", 0) >= 1:
                proc.send_signal(signal.SIGKILL)
                killed_at = (state.get("iteration"), state.get("stage"))
                break
        time.sleep(0.2)
    proc.wait(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    # restart: the same command resumes from state.json
    done = subprocess.run(adapt_cmd(tiny_tagger, target, out), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads(state_path.read_text())
    assert state["stage"] == "done" and state["iteration"] == 2 and state["finetuned"] == 2
    assert [h["iteration"] for h in state["history"]] == [0, 1, 2]
    # tau 0: nothing is clean, so every target is annotated in both iterations,
    # once each (a kill between saves repeats no committed prompt)
    assert len(state["annotations"]) == 3
    assert state["llm_counts"]["prompted"] == 6
    assert all(h["annotated"] == 3 and h["clean"] == 0 for h in state["history"][1:])
    assert len(state["rehearsal"]) == 3  # confident pseudo-labelled units mixed into fine-tuning
    nlp = spacy.load(out / "iter_2" / "model")
    assert "mentions" in nlp(TEXTS[0]).spans
    assert not (out / "iter_2" / "model.partial").exists()
    assert "iteration 2:" in done.stdout


def test_adapt_filter_moves_clean_annotations_to_the_demo_pool(tiny_tagger, tmp_path):
    from spacy_llm.registry import registry

    from spacy_clinie.llm.adapt import SalaRun

    from . import conftest

    task = registry.llm_tasks.get("clinie.ADECorrect.v1")()
    conftest.CANNED[:] = ['{"nausea": "AdverseReaction"}', "{}", "garbage"] * 3
    llm = registry.llm_models.get("test.Canned.v1")()
    run = SalaRun(tiny_tagger, TEXTS, tmp_path / "run", task=task, llm=llm, k=3, ratio=0.5, tau=1e9, n_iter=2, epochs=1, learn_rate=1e-5, batch_size=4, log=lambda m: None)
    state = run.run()
    # tau huge: every annotation is clean after iteration 1, so the loop stops
    # early with no targets left and the demo pool holds the LLM annotations
    assert state["iteration"] == 1 and state["targets"] == [] and state["stage"] == "done"
    assert len(state["demos"]) == 3
    assert state["llm_counts"]["unparseable"] >= 1  # garbage kept the tagger's spans, and was counted


def _bad_inputs(tmp_path: Path):
    """(target, --gold or None, what the error must say) for each bad input."""
    good = tmp_path / "target.jsonl"
    good.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    csv = tmp_path / "notes.csv"
    csv.write_text("id,text\n1,rash\n")
    jsonl = tmp_path / "broken.jsonl"
    jsonl.write_text(json.dumps({"text": "ok"}) + "\n" + '{"text": 3}\n')
    latin = tmp_path / "latin"
    latin.mkdir()
    (latin / "a.txt").write_text("Rash after the dose.", encoding="utf-8")
    (latin / "b.txt").write_bytes("caf\u00e9 nausea".encode("latin-1"))
    corrupt = tmp_path / "corrupt.spacy"
    corrupt.write_bytes(b"\x93\x01not a docbin at all" * 3)
    latin_jsonl = tmp_path / "latin.jsonl"
    latin_jsonl.write_bytes(b'{"text": "caf\xe9"}\n')
    return [
        (csv, None, ["notes.csv", "expected a .spacy or .jsonl file"]),
        (jsonl, None, ["broken.jsonl", "line 2"]),
        (latin, None, ["b.txt", "UTF-8"]),
        (latin_jsonl, None, ["latin.jsonl", "UTF-8"]),
        (corrupt, None, ["corrupt.spacy", "not a readable .spacy file"]),
        (good, corrupt, ["corrupt.spacy", "not a readable .spacy file"]),
    ]


def test_adapt_bad_inputs_give_clear_errors(tmp_path):
    """Issue 24, item 8: a bad target (wrong kind of file, a bad JSONL line,
    a non-UTF-8 .txt) or a corrupt --gold ends with one line naming the file
    and the problem, exit code 1, no traceback; nothing is loaded first."""
    from typer.testing import CliRunner

    from spacy_clinie.cli import app

    runner = CliRunner()
    for target, gold, expected in _bad_inputs(tmp_path):
        args = ["adapt", str(tmp_path), str(target), str(tmp_path / "run"), "--no-progress"]
        if gold is not None:
            args += ["--gold", str(gold)]
        result = runner.invoke(app, args)
        assert isinstance(result.exception, SystemExit), (target, repr(result.exception))
        assert result.exit_code != 0, (target, result.output)
        for part in expected:
            assert part in result.output, (target, part, result.output)
        assert "Traceback" not in result.output


def test_adapt_bad_llm_config_and_state(tmp_path):
    """A --llm-config that is not a config, and a damaged state.json of the
    run being resumed, are reported by name too."""
    from typer.testing import CliRunner

    from spacy_clinie.cli import app

    target = tmp_path / "target.jsonl"
    target.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    cfg = tmp_path / "llm.cfg"
    cfg.write_text("this is not a config")
    result = CliRunner().invoke(app, ["adapt", str(tmp_path), str(target), str(tmp_path / "run"), "--llm-config", str(cfg)])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, repr(result.exception)
    assert "llm.cfg: not a readable config" in result.output
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text('{"stage": "annot')
    result = CliRunner().invoke(app, ["adapt", str(tmp_path), str(target), str(run), "--no-progress"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, repr(result.exception)
    assert "state.json" in result.output and "unreadable run state" in result.output
