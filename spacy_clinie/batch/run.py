"""``clinie pipe``: run a pipeline over an EHR dump, resumably.

The loop is ``nlp.pipe`` over a lazy record stream, so memory stays flat
however long the input: the reader holds one line (or Parquet batch), spaCy
holds ``batch_size`` docs per process, and each doc is written and dropped as
soon as it comes back. See ``checkpoint.py`` for how a killed run resumes
with every record written exactly once.
"""

import gc
import json
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

from spacy.language import Language

from ..extensions import MENTIONS_KEY
from .checkpoint import RunState, fingerprint_mismatch, load_state, save_state
from .fhir import FHIR_KINDS, FhirOptions, FhirSink
from .output import OUTPUT_FORMATS, FolderSink, JsonlFile, JsonlSink, Sink
from .readers import Record, detect_format, estimate_total, read_records
from .records import doc_to_record, model_version, quarantine_record
from .table import TABLE_FORMATS, TableSink

BACKENDS = ("local", "ray")


@dataclass
class PipeSettings:
    """Everything ``clinie pipe`` can be told; the CLI maps options 1:1."""

    input_format: Optional[str] = None
    id_field: str = "id"
    text_field: str = "text"
    max_chars: int = 100_000
    output_format: str = "jsonl"
    quarantine: Optional[Path] = None
    batch_size: int = 64
    n_process: int = 1
    gpu_id: int = -1
    checkpoint_every: int = 1000
    spans_key: str = MENTIONS_KEY
    include_text: bool = False
    overwrite: bool = False
    progress: bool = True
    backend: str = "local"
    ray_address: Optional[str] = None
    ray_workers: int = 1
    ray_cpus_per_worker: float = 1.0
    ray_gpus_per_worker: float = 0.0
    code: Optional[Path] = None
    recycle_every: int = 50_000
    # stop at the first record a pipeline component fails on, instead of
    # quarantining it (not in the fingerprint: a run may resume either way)
    fail_fast: bool = False
    # input fields carried to record["meta"] (reactions.META_ROLES) for the
    # table and FHIR outputs; a record without one simply lacks it
    patient_field: str = "patient_id"
    drug_field: str = "drug"
    label_field: str = "label_id"
    section_field: str = "section"
    table_formats: Tuple[str, ...] = ("csv", "parquet")
    fhir_kind: str = "note"
    fhir_bundle: bool = False
    fhir_include_negated: bool = False
    # soft-prompt tagger prediction settings (pipeline/soft_prompt_tagger.py)
    inference: str = "fp32"
    bucket_by_length: bool = False

    def meta_fields(self) -> Dict[str, str]:
        """``{role: input field name}`` for ``record["meta"]``."""
        return {
            "patient_id": self.patient_field,
            "drug": self.drug_field,
            "label_id": self.label_field,
            "section": self.section_field,
        }

    def meta(self, fields: Dict[str, Any]) -> Dict[str, Any]:
        return {role: fields[name] for role, name in self.meta_fields().items() if name in fields}


@dataclass
class Summary:
    read: int
    written: int
    quarantined: int
    seconds: float
    resumed_from: int = 0
    already_complete: bool = False
    output: str = ""
    quarantine: str = ""
    model: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        return self.read == self.written + self.quarantined

    def line(self) -> str:
        rate = self.read / self.seconds if self.seconds > 0 else 0.0
        rejected = self.extra.get("rejected", 0) - self.extra.get("component_errors", 0)
        failed = self.extra.get("component_errors", 0)
        peak = self.extra.get("peak_rss_mb")
        return (
            f"read {self.read} = written {self.written} + quarantined {self.quarantined}"
            + (f" ({failed} failed in a pipeline component)" if failed else "")
            + (f" ({rejected} could not make valid output)" if rejected else "")
            + f" in {self.seconds:.1f}s ({rate:.1f} docs/s)"
            + (f", peak memory {peak:.0f} MB" if peak else "")
            + (f", resumed at record {self.resumed_from}" if self.resumed_from else "")
        )


def output_paths(output: Path, settings: PipeSettings) -> Tuple[Path, Path]:
    """(state file, quarantine file). For JSONL they sit beside the output
    file, for folder formats inside the folder."""
    if settings.output_format == "jsonl":
        state = output.with_name(output.name + ".state.json")
        quarantine = settings.quarantine or output.with_name(output.name + ".quarantine.jsonl")
    else:
        state = output / ".clinie-pipe-state.json"
        quarantine = settings.quarantine or output / "quarantine.jsonl"
    return state, Path(quarantine)


def fingerprint(model: str, input_path: Path, settings: PipeSettings, fmt: str) -> Dict[str, Any]:
    """What must not change between a run and its resumption: anything that
    alters which record has which index or what is written for it.
    ``batch_size``, ``n_process`` and the backend may change."""
    stat = input_path.stat()
    return {
        "model": str(model),
        "input": str(input_path.resolve()),
        "input_format": fmt,
        "input_size": stat.st_size if input_path.is_file() else None,
        "input_mtime_ns": stat.st_mtime_ns if input_path.is_file() else None,
        "id_field": settings.id_field,
        "text_field": settings.text_field,
        "max_chars": settings.max_chars,
        "output_format": settings.output_format,
        "spans_key": settings.spans_key,
        "include_text": settings.include_text,
        "meta_fields": settings.meta_fields(),
        # only when set, so that runs started before these settings resume
        **({"inference": settings.inference} if settings.inference != "fp32" else {}),
        **({"bucket_by_length": True} if settings.bucket_by_length else {}),
        **(
            {"table_formats": list(settings.table_formats)}
            if settings.output_format == "table"
            else {}
        ),
        **(
            {
                "fhir_kind": settings.fhir_kind,
                "fhir_bundle": settings.fhir_bundle,
                "fhir_include_negated": settings.fhir_include_negated,
            }
            if settings.output_format == "fhir"
            else {}
        ),
    }


def make_sink(output: Path, settings: PipeSettings, state: RunState) -> Sink:
    """The sink of ``settings.output_format``, reopened at the committed
    position of ``state`` (pyarrow and fhir.resources are imported by the
    sinks that need them, when they are made)."""
    fmt = settings.output_format
    if fmt == "jsonl":
        return JsonlSink(output, state.output_bytes)
    if fmt == "table":
        return TableSink(
            output, formats=settings.table_formats, positions=state.outputs, drug_field=settings.drug_field
        )
    if fmt == "fhir":
        options = FhirOptions(
            kind=settings.fhir_kind,
            bundle=settings.fhir_bundle,
            include_negated=settings.fhir_include_negated,
            patient_field=settings.patient_field,
            label_field=settings.label_field,
            drug_field=settings.drug_field,
        )
        return FhirSink(output, options, positions=state.outputs)
    return FolderSink(output, fmt, settings.spans_key)


class Committer:
    """Owns the output, the quarantine file and the state; ``advance`` is
    called in input order and commits every ``checkpoint_every`` records."""

    def __init__(
        self, output: Path, settings: PipeSettings, state: RunState, state_path: Path, quarantine_path: Path
    ) -> None:
        self.settings = settings
        self.state = state
        self.state_path = state_path
        self.sink = make_sink(output, settings, state)
        self.quarantine_file = JsonlFile(quarantine_path, state.quarantine_bytes)
        # records the sink rejected, or a pipeline component failed on, wait
        # in a pending file until the run completes (see checkpoint.py); the
        # counts below are the reader's
        self.rejects = JsonlFile(pending_rejects_path(quarantine_path), state.rejected_bytes)
        self.rejected = state.rejected
        self.component_errors = int(state.extra.get("component_errors", 0))
        reader_quarantined = state.quarantined - state.rejected
        self.quarantined_total = reader_quarantined  # including uncommitted lines
        self.written = state.written
        self.offset = state.offset
        self.q_bytes = state.quarantine_bytes
        self.q_count = reader_quarantined
        self.n_chars = int(state.extra.get("n_chars", 0))
        self._since_commit = 0
        self._clock = time.perf_counter()

    def quarantine(self, record: Record) -> Tuple[int, int]:
        """Write a bad record; returns (file position, count) after it."""
        self.quarantine_file.write(
            quarantine_record(record.index, record.id, record.where, record.reason or "?")
        )
        self.quarantined_total += 1
        return self.quarantine_file.position(), self.quarantined_total

    def write(self, doc_id: str, doc: Any, record: Dict[str, Any], index: int = -1) -> None:
        reason = self.sink.write(doc_id, doc, record)
        self.n_chars += int(record.get("n_chars") or 0)
        if reason is None:
            self.written += 1
            return
        assert self.sink.may_reject, f"{type(self.sink).__name__} rejected a record but may_reject is False"
        self.reject(index, doc_id, f"record {index}", reason)

    def reject(self, index: int, doc_id: Optional[str], where: str, reason: str) -> None:
        """A record read fine but not written (the sink refused it, or the
        pipeline failed on it), in input order: see checkpoint.py."""
        self.rejects.write(quarantine_record(index, doc_id, where, reason))
        self.rejected += 1

    def failed(self, record: Record, reason: str) -> None:
        """A record a pipeline component raised on."""
        self.reject(record.index, record.id, record.where, reason)
        self.component_errors += 1

    def advance(self, offset: int, q_bytes: int, q_count: int) -> None:
        """Records before ``offset`` are done, the quarantine file up to
        ``q_bytes`` (``q_count`` entries) belongs to them."""
        self._since_commit += offset - self.offset
        self.offset, self.q_bytes, self.q_count = offset, q_bytes, q_count
        if self._since_commit >= self.settings.checkpoint_every:
            self.commit()

    def commit(self, complete: bool = False) -> None:
        if complete:
            self.sink.finish()
        position = self.sink.sync()
        rejected_bytes = self.rejects.sync()
        if complete and self.rejected:
            # the rejected records join the quarantine file (see checkpoint.py)
            with open(self.rejects.path, "rb") as f:
                for line in f:
                    self.quarantine_file.write(json.loads(line))
            self.q_bytes = self.quarantine_file.position()
        self.quarantine_file.sync()
        now = time.perf_counter()
        st = self.state
        if isinstance(position, dict):
            st.outputs = position
        else:
            st.output_bytes = position
        st.offset, st.quarantine_bytes = self.offset, self.q_bytes
        st.rejected, st.rejected_bytes = self.rejected, rejected_bytes
        st.written, st.quarantined, st.complete = self.written, self.q_count + self.rejected, complete
        st.seconds += now - self._clock
        st.extra["n_chars"] = self.n_chars
        st.extra["component_errors"] = self.component_errors
        st.extra.update(peak_memory(st.extra, children=self.settings.n_process > 1))
        self._clock = now
        save_state(self.state_path, st)
        self._since_commit = 0

    def close(self) -> None:
        self.sink.close()
        self.quarantine_file.close()
        self.rejects.close()
        if self.state.complete:
            self.rejects.path.unlink(missing_ok=True)


def pending_rejects_path(quarantine_path: Path) -> Path:
    return quarantine_path.with_name(f".{quarantine_path.name}.pending")


def peak_memory(previous: Dict[str, Any], children: bool = False) -> Dict[str, float]:
    """Peak resident memory (MB) of this process and, with ``children``, of
    its largest finished child (the ``--n-process`` workers of earlier
    pipeline loads), the highest over every session of the run."""
    try:
        import resource
    except ImportError:  # not on Windows
        return {}
    unit = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KB on Linux
    out = {}
    whom = [("peak_rss_mb", resource.RUSAGE_SELF)]
    if children:
        whom.append(("peak_rss_children_mb", resource.RUSAGE_CHILDREN))
    for key, who in whom:
        now = round(resource.getrusage(who).ru_maxrss * 1024 / unit / 1024, 1)
        out[key] = max(now, float(previous.get(key, 0.0)))
    return out


_IMPORTED_CODE: Set[Path] = set()


def import_code(code: Optional[Union[str, Path]]) -> None:
    """Import a Python file with custom components (spaCy's ``--code``),
    so that pipelines using factories outside any installed package load."""
    if code is None:
        return
    from spacy.util import import_file

    path = Path(code).resolve()
    if not path.is_file():
        raise ValueError(f"{path}: --code must name a Python file")
    if path not in _IMPORTED_CODE:
        import_file("clinie_pipe_code", path)
        _IMPORTED_CODE.add(path)


def load_pipeline(
    model: Union[str, Path],
    gpu_id: int = -1,
    code: Optional[Union[str, Path]] = None,
    inference: str = "fp32",
    bucket_by_length: bool = False,
) -> Language:
    """``spacy.load`` after ``require_gpu`` when a GPU is asked for (it must
    come first so the weights are allocated on the device); ``inference`` and
    ``bucket_by_length`` other than the defaults switch the pipeline's
    soft-prompt taggers (an error if it has none)."""
    import spacy

    import_code(code)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    if inference != "fp32" or bucket_by_length:
        from ..pipeline.soft_prompt_tagger import set_inference

        if not set_inference(nlp, inference, bucket_by_length):
            raise ValueError(f"{model}: --inference/--bucket-by-length need a clinie_soft_prompt_tagger; the pipeline has {nlp.pipe_names}")
    return nlp


@dataclass
class Failed:
    """What ``_local_stream`` yields instead of a JSON record for a record
    a pipeline component raised on."""

    record: Record
    reason: str


def _describe(err: BaseException, limit: int = 500) -> str:
    text = str(err).strip().replace("\n", " ")
    return f"{type(err).__name__}: {text[:limit]}" + ("..." if len(text) > limit else "")


def annotate_one(nlp: Language, text: str) -> Tuple[Optional[Any], Optional[str]]:
    """``nlp(text)`` one component at a time: ``(doc, None)``, or ``(None,
    reason)`` naming the component that raised and the exception's type and
    message."""
    try:
        doc = nlp.make_doc(text)
    except Exception as err:
        return None, f"the tokenizer raised {_describe(err)}"
    for name, proc in nlp.pipeline:
        try:
            doc = proc(doc)
        except Exception as err:
            return None, f"pipeline component {name!r} raised {_describe(err)}"
    return doc, None


class _ErrorLog:
    """spaCy error handler for the stream: records a component's exception
    and lets ``nlp.pipe`` go on without that doc (or batch) instead of
    raising, so the stream, and with ``n_process`` > 1 the worker pool,
    survives; ``_local_stream`` sees the gap and re-runs the missing records
    one at a time with ``raising`` on. (An exception escaping spaCy's
    multiprocessing loop would hang it: its clean-up joins workers that are
    blocked writing to a full pipe.)"""

    def __init__(self) -> None:
        self.errors: List[BaseException] = []
        self.raising = False

    def __call__(self, proc_name: Optional[str], proc: Any, docs: Any, err: Exception) -> None:
        if self.raising:
            raise err
        self.errors.append(err)


def _install(nlp: Language, handler: Callable[..., Any]) -> Callable[[], None]:
    """Set ``handler`` on ``nlp`` and its pipes; returns what restores the old ones."""
    old = (nlp.default_error_handler, {name: pipe.get_error_handler() for name, pipe in nlp.pipeline if hasattr(pipe, "get_error_handler")})
    nlp.set_error_handler(handler)

    def restore() -> None:
        nlp.default_error_handler = old[0]
        for name, pipe in nlp.pipeline:
            if name in old[1]:
                pipe.set_error_handler(old[1][name])

    return restore


def _stop_workers(before: Set[Any]) -> None:
    """Terminate the ``nlp.pipe`` worker processes started since ``before``,
    so that closing the stream does not wait on them."""
    import multiprocessing

    for proc in multiprocessing.active_children():
        if proc not in before:
            proc.terminate()


def _local_stream(
    nlp: Language,
    records: Iterable[Record],
    committer: Committer,
    settings: PipeSettings,
    version: str,
    reload: Optional[Callable[[], Language]] = None,
) -> Iterator[Tuple[int, str, Any, Union[Dict[str, Any], Failed], Tuple[int, int]]]:
    """Yield ``(index, id, doc, record, quarantine position)`` for the good records
    in input order, quarantining the bad ones as they are read; a record a
    pipeline component raised on comes as ``(index, id, None, Failed, ...)``.

    The reader runs ahead of ``nlp.pipe`` (it buffers whole batches), so
    bad records reach the quarantine file before earlier good ones are
    written. For the commit we need, per good record, the quarantine size
    covering only the bad records before it: ``runs`` keeps that for each
    stretch of consecutive bad records (one entry per stretch, so it is
    bounded by the docs in flight, not by the length of a bad stretch).

    A component that raises: spaCy's error handler (``_ErrorLog``) drops
    the doc or batch and the stream goes on; the records that never came
    out (``inflight`` holds those given to ``nlp.pipe``, a few batches) are
    run again one at a time (``annotate_one``), so only the failing ones are
    lost, quarantined with the component and exception. An exception that
    escapes spaCy's handlers (a custom ``pipe`` method) ends the stream: its
    records in flight are re-run the same way and a fresh ``nlp.pipe`` takes
    the rest. With ``settings.fail_fast`` the first failure is raised (the
    component's own exception, from a re-run of the records in flight).

    spaCy 3.7 adds every new word of the stream to the vocab for good (3.8's
    ``memory_zone`` does not exist here), so with ``reload`` the pipeline is
    loaded afresh every ``settings.recycle_every`` documents. The consumer
    must not keep the last doc it got (it holds the old vocab) when it asks
    for the next one."""
    import multiprocessing

    runs: Deque[Tuple[int, int, int]] = deque()
    inflight: Deque[Record] = deque()  # good records given to nlp.pipe, not out of it yet
    last_bad = False
    exhausted = False
    reader_error: Optional[BaseException] = None
    since_load = 0
    source = iter(records)
    limit = settings.recycle_every if reload is not None and settings.recycle_every > 0 else 0
    log = _ErrorLog()

    def texts() -> Iterator[Tuple[str, int]]:
        nonlocal last_bad, exhausted, reader_error, since_load
        while True:
            try:
                record = next(source)
            except StopIteration:
                exhausted = True
                return
            except Exception as err:  # the input's fault, not a component's
                reader_error = err
                raise
            if record.reason:
                q_bytes, q_count = committer.quarantine(record)
                if last_bad and runs:
                    runs[-1] = (record.index, q_bytes, q_count)
                else:
                    runs.append((record.index, q_bytes, q_count))
                last_bad = True
            else:
                last_bad = False
                inflight.append(record)
                yield record.text, record.index
                since_load += 1
                if limit and since_load >= limit:
                    return

    q_state = (committer.q_bytes, committer.q_count)

    def done(record: Record, doc: Any, reason: Optional[str]) -> Tuple[int, str, Any, Any, Tuple[int, int]]:
        nonlocal q_state
        while runs and runs[0][0] < record.index:
            _, q_bytes, q_count = runs.popleft()
            q_state = (q_bytes, q_count)
        if reason is not None:
            return record.index, record.id, None, Failed(record, reason), q_state
        out = doc_to_record(
            doc,
            record.id,
            model=version,
            spans_key=settings.spans_key,
            include_text=settings.include_text,
            meta=settings.meta(record.fields),
        )
        return record.index, record.id, doc, out, q_state

    def rerun(upto: Optional[int]) -> Iterator[Tuple[int, str, Any, Any, Tuple[int, int]]]:
        """The records in flight before index ``upto`` (all: None), one at a time."""
        log.raising = True
        try:
            while inflight and (upto is None or inflight[0].index < upto):
                record = inflight.popleft()
                if settings.fail_fast:  # the component's own exception, with its traceback
                    try:
                        doc, reason = nlp(record.text or ""), None
                    except Exception as err:
                        err.add_note(
                            f"clinie pipe: a pipeline component failed on record {record.index} ({record.where}, "
                            f"id {record.id!r}); the run stopped because of --fail-fast. Without it the record "
                            "is quarantined with the error and the run goes on."
                        )
                        raise
                else:
                    doc, reason = annotate_one(nlp, record.text or "")
                yield done(record, doc, reason)
        finally:
            log.raising = False

    def fail_fast_stop(docs: Any, before: Set[Any]) -> None:
        """--fail-fast: end the stream now (its workers too) so that the
        records in flight can be re-run to raise the component's exception."""
        _stop_workers(before)
        docs.close()

    restore = _install(nlp, log)
    try:
        while True:
            before = set(multiprocessing.active_children())
            docs = nlp.pipe(texts(), as_tuples=True, batch_size=settings.batch_size, n_process=settings.n_process)
            escaped: Optional[Exception] = None
            while True:
                try:
                    doc, index = next(docs)
                except StopIteration:
                    break
                except Exception as err:
                    if err is reader_error:
                        raise
                    escaped = err
                    break
                if inflight[0].index != index or log.errors:  # some records before it failed
                    if settings.fail_fast:
                        fail_fast_stop(docs, before)
                        yield from rerun(None)
                        raise log.errors[0] if log.errors else RuntimeError("a pipeline component dropped a doc")
                    log.errors.clear()
                    yield from rerun(index)
                record = inflight.popleft()
                assert record.index == index, (record.index, index)
                yield done(record, doc, None)
            doc = None
            if escaped is not None:
                docs.close()  # spaCy's stream is dead; end it (and its workers)
                docs = None
                if settings.fail_fast:
                    yield from rerun(None)
                    raise escaped
            log.errors.clear()
            yield from rerun(None)  # records whose batch failed at the very end, or whose stream died
            if escaped is not None and not exhausted and not (limit and since_load >= limit):
                continue  # a fresh nlp.pipe over the rest of the input
            if exhausted:
                break
            assert reload is not None
            # drop the old pipeline, its doc stream and the last doc (which
            # holds the old vocab) before loading the new one, so that only
            # one vocab is ever alive
            restore()
            doc = docs = nlp = restore = None  # type: ignore[assignment]
            release_memory()
            nlp = reload()
            restore = _install(nlp, log)
            since_load = 0
    finally:
        if nlp is not None and restore is not None:
            restore()


def release_memory() -> None:
    """Collect cycles, then ask glibc to give freed heap pages back to the
    OS (``malloc_trim``), so a dropped pipeline's vocab lowers the RSS
    instead of only the heap's free lists. A no-op where there is no glibc."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_pipe(
    model: Union[str, Path],
    input_path: Union[str, Path],
    output: Union[str, Path],
    settings: Optional[PipeSettings] = None,
    *,
    nlp: Optional[Language] = None,
) -> Summary:
    """Process ``input_path`` with the pipeline ``model`` (a path or an
    installed package name) into ``output``; resume if a state file from the
    same run exists. Returns the summary (also kept in the state file)."""
    settings = settings or PipeSettings()
    input_path, output = Path(input_path), Path(output)
    if settings.output_format not in OUTPUT_FORMATS:
        raise ValueError(
            f"unknown output format {settings.output_format!r}; choose one of {', '.join(OUTPUT_FORMATS)}"
        )
    if settings.backend not in BACKENDS:
        raise ValueError(f"unknown backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}")
    if settings.checkpoint_every < 1 or settings.batch_size < 1:
        raise ValueError("--checkpoint-every and --batch-size must be at least 1")
    if settings.output_format == "fhir" and settings.fhir_kind not in FHIR_KINDS:
        raise ValueError(f"unknown --fhir-kind {settings.fhir_kind!r}; choose one of {', '.join(FHIR_KINDS)}")
    if settings.output_format == "table" and (
        not settings.table_formats or set(settings.table_formats) - set(TABLE_FORMATS)
    ):
        raise ValueError(
            f"--table-format {','.join(settings.table_formats)!r}: choose from {', '.join(TABLE_FORMATS)}"
        )
    fmt = settings.input_format or detect_format(input_path)
    state_path, quarantine_path = output_paths(output, settings)
    new_print = fingerprint(model, input_path, settings, fmt)

    state = None if settings.overwrite else load_state(state_path)
    if state is None:
        _check_fresh(output, quarantine_path, settings)
        state = RunState(fingerprint=new_print)
    else:
        diff = fingerprint_mismatch(state.fingerprint, new_print)
        if diff:
            raise ValueError(
                f"{state_path}: this output belongs to a run with other settings ({diff}); "
                "use another output path, or --overwrite to start again"
            )
    resumed_from = state.offset
    if state.complete:
        return _summary(state, resumed_from, output, quarantine_path, already_complete=True)
    if resumed_from:
        state.restarts += 1

    own_nlp = nlp is not None  # a caller's pipeline cannot be reloaded from disk
    if nlp is None and settings.backend == "local":
        nlp = load_pipeline(model, settings.gpu_id, settings.code, settings.inference, settings.bucket_by_length)
    committer = Committer(output, settings, state, state_path, quarantine_path)
    if not resumed_from:
        committer.commit()  # the state file exists before any output does
    total, _ = estimate_total(input_path, fmt) if settings.progress else (None, False)
    bar = _progress(settings, total, resumed_from)
    try:
        if settings.backend == "local":
            assert nlp is not None
            records = read_records(
                input_path,
                fmt=fmt,
                id_field=settings.id_field,
                text_field=settings.text_field,
                max_chars=settings.max_chars,
                start=resumed_from,
                extra_fields=list(settings.meta_fields().values()),
            )
            reload = None if own_nlp else (lambda: load_pipeline(model, settings.gpu_id, settings.code, settings.inference, settings.bucket_by_length))
            stream = _local_stream(nlp, records, committer, settings, model_version(nlp), reload)
            nlp = None  # the stream owns it now, so a reload can free it
        else:
            from .ray_backend import ray_stream

            stream = ray_stream(str(model), resumed_from, committer, settings, input_path=input_path, fmt=fmt)
        for index, doc_id, doc, record, (q_bytes, q_count) in stream:
            if isinstance(record, Failed):
                committer.failed(record.record, record.reason)
            else:
                state.extra["model_version"] = record["model"]
                committer.write(doc_id, doc, record, index)
            if bar is not None:
                bar.update(index + 1 - committer.offset)
            committer.advance(index + 1, q_bytes, q_count)
            doc = record = None  # so a pipeline reload can free the old vocab
        # every record is now written or quarantined: the bad ones after the
        # last good record are the quarantine entries not yet advanced over
        end = committer.offset + (committer.quarantined_total - committer.q_count)
        if bar is not None:
            bar.update(end - committer.offset)
        committer.advance(end, committer.quarantine_file.position(), committer.quarantined_total)
        committer.commit(complete=True)
    finally:
        if bar is not None:
            bar.close()
        committer.close()
    return _summary(state, resumed_from, output, quarantine_path)


def _check_fresh(output: Path, quarantine_path: Path, settings: PipeSettings) -> None:
    """Refuse to append to, or silently replace, outputs this run did not
    start; ``--overwrite`` clears them."""
    targets = [quarantine_path, pending_rejects_path(quarantine_path)]
    if settings.output_format == "jsonl":
        targets.append(output)
    elif settings.output_format in ("table", "fhir") and output.is_dir():
        # the table's and FHIR's files (.csv, .parquet, Parquet parts,
        # .ndjson); brat/TAC XML files are replaced one by one, as before
        targets += [p for p in output.iterdir() if p.suffix in (".csv", ".parquet", ".parts", ".ndjson")]
    if settings.overwrite:
        for path in targets:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        return
    for path in targets:
        if path.exists() and (any(path.iterdir()) if path.is_dir() else path.stat().st_size > 0):
            raise ValueError(f"{path} exists and has no run state; pass --overwrite to replace it")


def _progress(settings: PipeSettings, total: Optional[int], initial: int) -> Any:
    if not settings.progress:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="doc",
        unit_scale=True,
        smoothing=0.05,
        mininterval=0.5,
        dynamic_ncols=True,
    )


def _summary(
    state: RunState, resumed_from: int, output: Path, quarantine_path: Path, *, already_complete: bool = False
) -> Summary:
    return Summary(
        read=state.read,
        written=state.written,
        quarantined=state.quarantined,
        seconds=state.seconds,
        resumed_from=resumed_from,
        already_complete=already_complete,
        output=str(output),
        quarantine=str(quarantine_path),
        model=str(state.extra.get("model_version", "")),
        extra={
            "restarts": state.restarts,
            "rejected": state.rejected,
            "component_errors": int(state.extra.get("component_errors", 0)),
            **{k: state.extra[k] for k in ("n_chars", "peak_rss_mb", "peak_rss_children_mb") if k in state.extra},
        },
    )
