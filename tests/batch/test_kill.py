"""A real kill: ``clinie pipe`` in a subprocess gets SIGKILL twice at
arbitrary moments; the third start finishes. Every id must be in the output
exactly once, and output and quarantine must equal an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spacy_clinie.batch import PipeSettings, run_pipe

from .conftest import CODE, build_light_pipeline, good_records, json_line, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
N = 2000
ARGS = [
    "--no-progress",
    "--checkpoint-every",
    "40",
    "--batch-size",
    "16",
    "--max-chars",
    "200",
    "--code",
    str(CODE),
]


def _input(path: Path) -> Path:
    rows = []
    for i, rec in enumerate(good_records(N)):
        rows.append(json_line(rec))
        if i % 97 == 0:
            rows.append(b'{"id": "bad-%d", "text": "\xff\xfe"}' % i)
        if i % 131 == 0:
            rows.append(json_line({"id": f"long-{i}", "text": "rash " * 60}))
    return write_jsonl(path, rows)


def _offset(state: Path) -> int:
    try:
        return json.loads(state.read_text())["offset"]
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def _start(model: Path, src: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "spacy_clinie", "pipe", str(model), str(src), str(out), *ARGS]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _kill_after(proc: subprocess.Popen, state: Path, offset: int, extra_delay: float) -> int:
    deadline = time.monotonic() + 120
    while _offset(state) < offset:
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "run made no progress"
        time.sleep(0.01)
    time.sleep(extra_delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return _offset(state)


def test_sigkill_twice_then_resume(tmp_path):
    model = build_light_pipeline(tmp_path / "slow", sleep=0.002)
    src = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    state = tmp_path / "out.jsonl.state.json"

    at1 = _kill_after(_start(model, src, out), state, 400, 0.137)
    at2 = _kill_after(_start(model, src, out), state, at1 + 600, 0.071)
    assert 0 < at1 < at2 < N, (at1, at2)
    assert not json.loads(state.read_text())["complete"]

    proc = _start(model, src, out)
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, output.decode()
    n_bad = len(range(0, N, 97)) + len(range(0, N, 131))
    assert f"read {N + n_bad} = written {N} + quarantined {n_bad}" in output.decode()

    ids = [r["id"] for r in read_jsonl(out)]
    assert len(ids) == len(set(ids)) == N
    assert ids == [f"note-{i}" for i in range(N)]
    quarantined = [q["id"] for q in read_jsonl(tmp_path / "out.jsonl.quarantine.jsonl")]
    assert len(quarantined) == len(set(quarantined)) == n_bad

    ref = tmp_path / "ref.jsonl"  # same pipeline and meta without the sleep
    fast = build_light_pipeline(tmp_path / "fast")
    run_pipe(fast, src, ref, PipeSettings(progress=False, max_chars=200, batch_size=64))
    assert out.read_bytes() == ref.read_bytes()
    assert (tmp_path / "out.jsonl.quarantine.jsonl").read_bytes() == (
        tmp_path / "ref.jsonl.quarantine.jsonl"
    ).read_bytes()
    assert json.loads(state.read_text())["restarts"] == 2
