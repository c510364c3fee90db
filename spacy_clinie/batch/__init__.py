"""Batch processing of EHR dumps (``clinie pipe``): lazy readers, per-document
JSONL records, exactly-once resumable output and a quarantine for bad
records; ``--backend ray`` runs the same pipeline over Ray Data."""

from ..formats import INPUT_FORMATS
from .inputs import Record, read_records
from .records import doc_to_record, model_version
from .run import BACKENDS, PipeSettings, Summary, run_pipe

__all__ = [
    "BACKENDS",
    "INPUT_FORMATS",
    "PipeSettings",
    "Record",
    "Summary",
    "doc_to_record",
    "model_version",
    "read_records",
    "run_pipe",
]
