"""``clinie pipe``'s settings (one dataclass, the CLI's options) and the
backends it runs on."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..extensions import MENTIONS_KEY

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
