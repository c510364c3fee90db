"""``--backend ray`` on a local Ray instance (2 CPUs): the output and the
quarantine are byte-identical to the local backend's, including when a run
started locally is resumed on Ray."""

import pytest
import spacy

from spacy_clinie.batch import PipeSettings, run_pipe
from spacy_clinie.batch.checkpoint import load_state

from .conftest import CODE
from .test_pipe import mixed_input

ray = pytest.importorskip("ray", reason="Ray Data is the optional extra spacy-clinie[ray]")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _settings(**kw):
    base = dict(progress=False, max_chars=300, checkpoint_every=9, batch_size=8, code=CODE)
    base.update(kw)
    return PipeSettings(**base)


def test_ray_output_identical_to_local(tmp_path, light_model, local_ray):
    src = mixed_input(tmp_path / "in.jsonl", n=80)
    local = run_pipe(light_model, src, tmp_path / "local.jsonl", _settings())
    remote = run_pipe(
        light_model, src, tmp_path / "ray.jsonl", _settings(backend="ray", ray_workers=2, recycle_every=20)
    )
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert (tmp_path / "ray.jsonl.quarantine.jsonl").read_bytes() == (
        tmp_path / "local.jsonl.quarantine.jsonl"
    ).read_bytes()
    assert (remote.read, remote.written, remote.quarantined) == (local.read, local.written, local.quarantined)
    assert remote.consistent and remote.quarantined > 0

    # a local run that died part-way resumes on Ray with the same result
    out = tmp_path / "mixed.jsonl"
    nlp = spacy.load(light_model)
    nlp.add_pipe("clinie_test_crash", config={"prefix": "Patient 51 "})
    with pytest.raises(RuntimeError, match="simulated crash"):  # the class as re-imported by --code
        run_pipe(light_model, src, out, _settings(fail_fast=True), nlp=nlp)
    assert 0 < load_state(tmp_path / "mixed.jsonl.state.json").offset < local.read
    resumed = run_pipe(light_model, src, out, _settings(backend="ray", ray_workers=1))
    assert resumed.resumed_from > 0
    assert out.read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert (tmp_path / "mixed.jsonl.quarantine.jsonl").read_bytes() == (
        tmp_path / "local.jsonl.quarantine.jsonl"
    ).read_bytes()


def test_ray_rejects_folder_output(tmp_path, light_model, local_ray):
    src = mixed_input(tmp_path / "in.jsonl", n=3)
    with pytest.raises(ValueError, match=r"--backend ray writes records \(jsonl, table, fhir\)"):
        run_pipe(light_model, src, tmp_path / "out", _settings(backend="ray", output_format="brat"))


@pytest.mark.parametrize("fmt", ["table", "fhir"])
def test_ray_table_and_fhir_identical_to_local(tmp_path, local_ray, fmt):
    """The record's meta (patient id, drug field) travels through Ray, and
    records the sink rejects reach the same quarantine."""
    from .output_data import build_notes_pipeline, note_records, write_jsonl

    model = build_notes_pipeline(tmp_path / "notes_model")
    src = write_jsonl(tmp_path / "notes.jsonl", note_records())
    local = run_pipe(model, src, tmp_path / "local", _settings(output_format=fmt))
    remote = run_pipe(model, src, tmp_path / "ray", _settings(output_format=fmt, backend="ray", ray_workers=2))
    assert (remote.read, remote.written, remote.quarantined) == (local.read, local.written, local.quarantined)
    assert remote.extra["rejected"] == local.extra["rejected"] > 0
    for name in ["quarantine.jsonl"] + (["reactions.csv"] if fmt == "table" else ["AdverseEvent.ndjson"]):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
