"""The local backend of ``clinie pipe``: ``nlp.pipe`` over the record
stream (``n_process`` workers), with an error handler so that a component
that raises costs only its record (re-run alone and quarantined), and
pipeline reloads every ``recycle_every`` docs."""
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

from spacy.language import Language

from .committer import Committer
from .pipeline import Failed, annotate_one, release_memory
from .inputs import Record
from .records import doc_to_record
from .settings import PipeSettings

class _ErrorLog:
    """spaCy error handler for the stream: records a component's exception
    and lets ``nlp.pipe`` go on without that doc (or batch) instead of
    raising, so the stream, and with ``n_process`` > 1 the worker pool,
    survives; ``local_stream`` sees the gap and re-runs the missing records
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


def local_stream(
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
