"""The committer of ``clinie pipe``: owns the output sink, the quarantine
file and the run state, and commits them together every
``checkpoint_every`` records, so that a killed run resumes with every record
written exactly once (see ``checkpoint.py``)."""
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .checkpoint import RunState, save_state
from .fhir import FhirOptions, FhirSink
from .output import FolderSink, JsonlFile, JsonlSink, Sink
from .inputs import Record
from .records import quarantine_record
from .settings import PipeSettings
from .table import TableSink

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
