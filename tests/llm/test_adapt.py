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


TEXTS = [
    "Patients reported nausea and severe headache after the first dose. Dizziness was also seen.",
    "The most common adverse reactions were rash, fatigue and diarrhea. Take with food.",
    "Hepatotoxicity was seen in rats at high doses. Monitor liver enzymes monthly.",
    "Anaphylaxis and angioedema have been reported. Vomiting occurred in two patients.",
]


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


def _gold_of_texts():
    from spacy_clinie.tokenizer import make_blank

    from ..pipeline.test_soft_prompt_tagger import make_doc

    nlp = make_blank()
    ents = [[("nausea", "human"), ("headache", "human"), ("Dizziness", "human")], [("rash", "human"), ("fatigue", "human"), ("diarrhea", "human")],
            [("Hepatotoxicity", "animal")], [("Anaphylaxis", "human"), ("angioedema", "human"), ("Vomiting", "human")]]
    return [make_doc(nlp, t, e) for t, e in zip(TEXTS, ents)]


def _drop_rejecting_gate():
    from spacy_clinie.llm.gate import FEATURES, EditGate

    coef = [-20.0 if f == "drop" else 0.0 for f in FEATURES]
    return EditGate().from_dict({"features": list(FEATURES), "coef": coef, "intercept": 5.0})


@pytest.mark.parametrize("gated", [False, True])
def test_adapt_gate_decides_which_answers_train_the_tagger(tiny_tagger, tmp_path, gated):
    """An annotator that deletes every span (the simulated annotator missing
    everything): ungated, the tagger is fine-tuned on empty units; with a gate
    that rejects drops, the annotations keep the tagger's spans. Scores on a
    separate labelled set are written per iteration, with the predictions."""
    from spacy_llm.registry import registry

    from spacy_clinie.llm.adapt import SalaRun
    from spacy_clinie.llm.models.simulated import SimulatedAnnotator

    gold = _gold_of_texts()
    task = registry.llm_tasks.get("clinie.ADECorrect.v2")(gate_mode="on" if gated else "off")
    if gated:
        task.gate = _drop_rejecting_gate()
    llm = SimulatedAnnotator(gold, miss_rate=1.0)
    run = SalaRun(tiny_tagger, TEXTS, tmp_path / "run", task=task, llm=llm, k=4, ratio=0.5, tau=0.0, n_iter=1, epochs=1,
                  learn_rate=1e-5, batch_size=4, eval_sets={"held": gold}, log=lambda m: None)
    state = run.run()
    log = state["annotations_by_iteration"]["1"]
    assert len(log) == 4 and all(row["answer"] == [] for row in log.values())
    tagged = sum(len(row["applied"]) for row in log.values()) if gated else None
    if gated:
        assert tagged > 0, "the tiny tagger found nothing to keep"
        assert state["llm_counts"]["rejected"] == state["llm_counts"]["edits"] == tagged
    else:
        assert all(row["applied"] == [] for row in log.values())
    assert [sorted(h["scores"]) for h in state["history"]] == [["held"], ["held"]]
    assert (tmp_path / "run" / "iter_0" / "pred_held.spacy").exists() and (tmp_path / "run" / "iter_1" / "pred_held.spacy").exists()
    assert set(state["seconds"]["1"]) == {"annotate", "finetune", "filter"}


def test_rehearsal_mirrors_the_pools_share_of_units_with_mentions(tmp_path):
    """The most confident units are mostly empty; rehearsing only those
    taught the tagger to predict nothing. Rehearsal takes the most confident
    units with and without predicted mentions in the pool's proportion."""
    from spacy_clinie.llm.adapt import SalaRun

    gold = _gold_of_texts()  # as if the tagger had predicted exactly these spans
    # units: (doc, start, end) = each doc whole; entropies: empty units the most confident
    cands = [((i, 0, len(d)), 0.01 * (i + 1)) for i, d in enumerate(gold)]
    cands += [((i, len(d) - 1, len(d)), 0.0001) for i, d in enumerate(gold)]  # the final "." of each: no mentions
    run = SalaRun(tmp_path / "unused", TEXTS, tmp_path / "run", task=None, llm=None, k=4, ratio=0.5, tau=0.0, n_iter=1, epochs=1,
                  learn_rate=1e-5, batch_size=4, rehearsal=1.0, log=lambda m: None)
    chosen = run._rehearsal_units(gold, cands)
    assert len(chosen) == 4
    assert sum(1 for spans in chosen.values() if spans) == 2  # 4 of 8 candidates have mentions
    n0 = len(gold[0])
    assert f"0:{n0 - 1}:{n0}" in chosen and f"0:0:{n0}" in chosen  # the most confident of each kind


def test_adapt_gate_needs_the_v2_task(tmp_path):
    """--gate with a [task] block naming v1 (which has no gate) is refused
    with a message that says so, before any model loads."""
    from typer.testing import CliRunner

    from spacy_clinie.cli import app

    target = tmp_path / "target.jsonl"
    target.write_text(json.dumps({"text": TEXTS[0]}) + "\n")
    gate = tmp_path / "gate.json"
    gate.write_text("{}")
    cfg = tmp_path / "llm.cfg"
    cfg.write_text('[model]\n@llm_models = "clinie.LlamaCpp.v1"\n\n[task]\n@llm_tasks = "clinie.ADECorrect.v1"\n')
    result = CliRunner().invoke(app, ["adapt", str(tmp_path), str(target), str(tmp_path / "run"), "--gate", str(gate), "--llm-config", str(cfg)])
    assert result.exit_code != 0
    assert "--gate needs the clinie.ADECorrect.v2 task" in result.output
