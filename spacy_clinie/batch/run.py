"""``clinie pipe``: run a pipeline over an EHR dump, resumably.

The loop is ``nlp.pipe`` over a lazy record stream, so memory stays flat
however long the input: the reader holds one line (or Parquet batch), spaCy
holds ``batch_size`` docs per process, and each doc is written and dropped as
soon as it comes back. See ``checkpoint.py`` for how a killed run resumes
with every record written exactly once.
"""

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from spacy.language import Language

from .checkpoint import RunState, fingerprint_mismatch, load_state
from .committer import Committer, pending_rejects_path
from .fhir import FHIR_KINDS
from ..formats import OUTPUT_FORMATS
from .inputs import detect_format, estimate_total, read_records
from .records import model_version
from .local_backend import local_stream
from .pipeline import Failed, load_pipeline
from .settings import BACKENDS, PipeSettings
from .table import TABLE_FORMATS


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
            stream = local_stream(nlp, records, committer, settings, model_version(nlp), reload)
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
