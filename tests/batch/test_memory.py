"""``--recycle-every``: spaCy 3.7's vocab keeps every new string, so the
pipeline is reloaded every N docs; the old pipeline and its vocab must be
gone *before* the new one loads, or two vocabs are alive at the peak."""
import gc

from spacy.vocab import Vocab

from spacy_clinie.batch import PipeSettings, run_pipe
from spacy_clinie.batch import pipeline as pipeline_module
from spacy_clinie.batch import run as run_module

from .conftest import json_line, read_jsonl, write_jsonl


def _vocabs_with(marker: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Vocab) and marker in o.strings)


def test_old_vocab_is_freed_before_reload(tmp_path, light_model, monkeypatch):
    # every note has a word no other note has: the first chunk's vocab holds "zqa0"
    rows = [json_line({"id": f"n{i}", "text": f"Note zqa{i} reported nausea."}) for i in range(100)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    alive_at_reload = []
    original = run_module.load_pipeline

    def load(*args, **kwargs):
        alive_at_reload.append(_vocabs_with("zqa0"))
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "load_pipeline", load)
    settings = PipeSettings(progress=False, batch_size=8, recycle_every=30, checkpoint_every=10)
    summary = run_pipe(light_model, src, tmp_path / "out.jsonl", settings)
    assert summary.written == 100
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == [f"n{i}" for i in range(100)]
    assert len(alive_at_reload) == 4  # the first load, then after docs 30, 60 and 90
    assert alive_at_reload == [0, 0, 0, 0], alive_at_reload
    # and the stream's words do not accumulate in the pipeline that finishes it
    assert _vocabs_with("zqa0") == 0


class _Node:
    pass


def _cycle_alive(monkeypatch, libc_missing: bool) -> bool:
    """Whether a reference cycle survives ``release_memory`` (automatic gc off)."""
    import ctypes
    import weakref

    if libc_missing:  # no glibc (macOS, musl): the trim is skipped, the collection is not

        def no_libc(*args, **kwargs):
            raise OSError("libc.so.6: cannot open shared object file")

        monkeypatch.setattr(ctypes, "CDLL", no_libc)
    gc.collect()
    gc.disable()
    try:
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        assert ref() is not None  # only the cycle collector can free it
        pipeline_module.release_memory()
        return ref() is not None
    finally:
        gc.enable()


def test_release_memory_collects_cycles_with_or_without_glibc(monkeypatch):
    assert _cycle_alive(monkeypatch, libc_missing=False) is False
    assert _cycle_alive(monkeypatch, libc_missing=True) is False
