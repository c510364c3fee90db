"""A pipeline component that raises on some records (issue 24, item 7): the
batch is re-run one record at a time, each failing record is quarantined
with the exception's type and message, the run goes on, and a resumed run
neither loops on those records nor writes anything twice. ``--fail-fast``
aborts as before."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.language import Language

from spacy_clinie.batch import PipeSettings, run_pipe
from spacy_clinie.batch.checkpoint import load_state

from .conftest import CODE, note, read_jsonl
from .test_pipe import mixed_input
from .toy_components import SimulatedCrash

ROOT = Path(__file__).resolve().parents[2]
CRASHING = ["note-4"] + [f"note-{i}" for i in range(40, 50)]  # texts starting "Patient 4"


@Language.factory("clinie_test_interrupt", default_config={"prefix": "Patient 90 "})
def make_interrupt(nlp: Language, name: str, prefix: str):
    """Stops the process (as Ctrl-C would) at the first doc with ``prefix``:
    a run killed after it has quarantined component failures."""

    def interrupt(doc):
        if doc.text.startswith(prefix):
            raise KeyboardInterrupt
        return doc

    return interrupt


class CrashInPipe:
    """A component with its own ``pipe`` method, which spaCy's error handler
    does not cover: its exception ends ``nlp.pipe``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, doc):
        if doc.text.startswith(self.prefix):
            raise SimulatedCrash(f"simulated crash at {doc.text[:20]!r}")
        return doc

    def pipe(self, docs, batch_size: int = 128):
        for doc in docs:
            yield self(doc)


@Language.factory("clinie_test_crash_in_pipe", default_config={"prefix": "Patient 4"})
def make_crash_in_pipe(nlp: Language, name: str, prefix: str):
    return CrashInPipe(prefix)


def with_pipes(light_model: Path, path: Path, *pipes) -> Path:
    nlp = spacy.load(light_model)
    for factory, config in pipes:
        nlp.add_pipe(factory, config=config)
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def crash_model(light_model, tmp_path_factory):
    return with_pipes(light_model, tmp_path_factory.mktemp("crash") / "model", ("clinie_test_crash", {"prefix": "Patient 4"}))


def settings(**kw):
    return PipeSettings(**{"progress": False, "max_chars": 300, "checkpoint_every": 7, "batch_size": 8, **kw})


def lines(path: Path):
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def reference(light_model, tmp_path_factory):
    """The same input through the pipeline without the crashing component."""
    tmp = tmp_path_factory.mktemp("ref")
    src = mixed_input(tmp / "in.jsonl")
    run_pipe(light_model, src, tmp / "ref.jsonl", settings())
    return src, tmp / "ref.jsonl"


def check_output(out: Path, reference: Path) -> None:
    want = [line for line in lines(reference) if json.loads(line)["id"] not in CRASHING]
    assert lines(out) == want
    quarantine = read_jsonl(out.with_name(out.name + ".quarantine.jsonl"))
    failed = [q for q in quarantine if "SimulatedCrash" in q["reason"]]
    assert sorted(q["id"] for q in failed) == sorted(CRASHING)
    for q in failed:
        text = note(int(q["id"].split("-")[1]))
        assert q["reason"] == f"pipeline component 'clinie_test_crash' raised SimulatedCrash: simulated crash at {text[:20]!r}"
        assert q["where"].startswith("in.jsonl line ")
    assert len(quarantine) == 20 + len(CRASHING)
    assert len({q["index"] for q in quarantine}) == len(quarantine)  # each record once


@pytest.mark.parametrize("n_process", [1, 2])
def test_failing_records_are_quarantined_and_the_run_goes_on(tmp_path, crash_model, reference, n_process):
    src, ref = reference
    out = tmp_path / "out.jsonl"
    summary = run_pipe(crash_model, src, out, settings(n_process=n_process))
    assert (summary.read, summary.written, summary.quarantined) == (140, 120 - len(CRASHING), 20 + len(CRASHING))
    assert summary.consistent and summary.extra["component_errors"] == len(CRASHING)
    check_output(out, ref)
    assert load_state(tmp_path / "out.jsonl.state.json").complete
    assert not (tmp_path / ".out.jsonl.quarantine.jsonl.pending").exists()


def test_fail_fast_aborts_and_the_resume_does_not_loop(tmp_path, crash_model, reference):
    src, ref = reference
    out = tmp_path / "out.jsonl"
    with pytest.raises(SimulatedCrash) as err:
        run_pipe(crash_model, src, out, settings(fail_fast=True))
    assert any("--fail-fast" in note for note in getattr(err.value, "__notes__", []))
    state = load_state(tmp_path / "out.jsonl.state.json")
    assert not state.complete and state.offset < 10
    summary = run_pipe(crash_model, src, out, settings())  # the same output, resumed without the flag
    assert summary.resumed_from == state.offset and summary.consistent
    check_output(out, ref)


def test_killed_after_failures_then_resumed_is_exactly_once(tmp_path, light_model, reference):
    """Killed (KeyboardInterrupt is not caught) after eleven records were
    quarantined for a component error: the resumed run quarantines each of
    them once and writes each good record once."""
    src, ref = reference
    model = with_pipes(
        light_model,
        tmp_path / "model",
        ("clinie_test_crash", {"prefix": "Patient 4"}),
        ("clinie_test_interrupt", {"prefix": "Patient 90 "}),
    )
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_pipe(model, src, out, settings())
    state = load_state(tmp_path / "out.jsonl.state.json")
    assert state.offset > 60 and not state.complete  # past every failing record
    assert state.extra["component_errors"] == len(CRASHING)
    with_pipes(light_model, model, ("clinie_test_crash", {"prefix": "Patient 4"}))  # the same path, no interrupt
    summary = run_pipe(model, src, out, settings(batch_size=5))
    assert summary.resumed_from == state.offset and summary.consistent
    check_output(out, ref)


def test_cli_quarantines_and_fail_fast_stops(tmp_path, crash_model, reference):
    src, ref = reference
    out = tmp_path / "cli.jsonl"
    base = [sys.executable, "-m", "spacy_clinie", "pipe", str(crash_model), str(src)]
    opts = ["--no-progress", "--max-chars", "300", "--code", str(CODE)]
    run = subprocess.run([*base, str(out), *opts], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"read 140 = written {120 - len(CRASHING)} + quarantined {20 + len(CRASHING)}" in run.stdout
    assert f"{len(CRASHING)} failed in a pipeline component" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    check_output(out, ref)
    stop = subprocess.run([*base, str(tmp_path / "ff.jsonl"), *opts, "--fail-fast"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert stop.returncode != 0
    assert "SimulatedCrash: simulated crash at 'Patient 4 reported n'" in stop.stderr
    assert "--fail-fast" in stop.stderr


def test_ray_backend_quarantines_the_same_records(tmp_path, crash_model, reference):
    """--backend ray: each actor re-runs a failed batch one record at a time;
    output and quarantine equal the local backend's."""
    ray = pytest.importorskip("ray", reason="Ray Data is the optional extra spacy-clinie[ray]")
    src, ref = reference
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        out = tmp_path / "ray.jsonl"
        summary = run_pipe(crash_model, src, out, settings(backend="ray", ray_workers=2, code=CODE))
        assert summary.consistent and summary.extra["component_errors"] == len(CRASHING)
        check_output(out, ref)
        local = tmp_path / "local.jsonl"
        run_pipe(crash_model, src, local, settings())
        assert out.read_bytes() == local.read_bytes()
        assert (tmp_path / "ray.jsonl.quarantine.jsonl").read_bytes() == (tmp_path / "local.jsonl.quarantine.jsonl").read_bytes()
        with pytest.raises(Exception, match="simulated crash"):  # --fail-fast: Ray's error wraps the component's
            run_pipe(crash_model, src, tmp_path / "ff.jsonl", settings(backend="ray", code=CODE, fail_fast=True))
    finally:
        ray.shutdown()


HANG_SCRIPT = """
import json, sys
from pathlib import Path
import tests.batch.toy_components  # noqa: F401
from spacy_clinie.batch import PipeSettings, run_pipe
model, tmp = Path(sys.argv[1]), Path(sys.argv[2])
rows = [{"id": f"n{i}", "text": f"Patient {i} reported " + "nausea and a rash. " * 1500} for i in range(60)]
(tmp / "big.jsonl").write_text("".join(json.dumps(r) + chr(10) for r in rows))
s = run_pipe(model, tmp / "big.jsonl", tmp / "big-out.jsonl", PipeSettings(progress=False, n_process=2, batch_size=4, max_chars=0))
print(s.read, s.written, s.quarantined, s.extra["component_errors"])
"""


def test_n_process_2_with_big_docs_does_not_hang(tmp_path, crash_model):
    """Found by the fuzz harness: with --n-process 2 an exception raised out
    of spaCy's multiprocessing loop hangs in its clean-up (workers blocked
    writing big docs to a full pipe are joined). The error handler keeps
    the pool alive instead; here each doc is ~28k characters."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HANG_SCRIPT, str(crash_model), str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its hung workers
        proc.communicate()
        pytest.fail("clinie pipe --n-process 2 hung after a component error")
    assert proc.returncode == 0, err[-3000:]
    # texts starting "Patient 4": 4 and 40..49
    assert out.split() == ["60", "49", "11", "11"]


def test_exception_out_of_a_custom_pipe_method(tmp_path, light_model, reference):
    """The other path: the exception ends nlp.pipe; the records in flight are
    re-run one at a time and a fresh nlp.pipe takes the rest."""
    src, ref = reference
    model = with_pipes(light_model, tmp_path / "model", ("clinie_test_crash_in_pipe", {"prefix": "Patient 4"}))
    out = tmp_path / "out.jsonl"
    summary = run_pipe(model, src, out, settings())
    assert summary.consistent and summary.extra["component_errors"] == len(CRASHING)
    quarantine = read_jsonl(tmp_path / "out.jsonl.quarantine.jsonl")
    assert sorted(q["id"] for q in quarantine if "SimulatedCrash" in q["reason"]) == sorted(CRASHING)
    assert {q["reason"].split(" raised")[0] for q in quarantine if "SimulatedCrash" in q["reason"]} == {
        "pipeline component 'clinie_test_crash_in_pipe'"
    }
    assert lines(out) == [line for line in lines(ref) if json.loads(line)["id"] not in CRASHING]
    with pytest.raises(SimulatedCrash):
        run_pipe(model, src, tmp_path / "ff.jsonl", settings(fail_fast=True))
