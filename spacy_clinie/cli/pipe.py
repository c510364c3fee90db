from pathlib import Path
from typing import Optional

import typer

from ..errors import FormatError
from ..formats import INPUT_FORMATS, OUTPUT_FORMATS
from ._util import Arg, Opt, app


@app.command("pipe")
def pipe_cli(
    model: str = Arg(
        ..., help="Pipeline: a path (training/x/model-best) or an installed package (en_clinie_ade)."
    ),
    input_path: Path = Arg(
        ...,
        help="JSONL, CSV/TSV, Parquet (optionally .gz for JSONL/CSV), or a folder of .txt files.",
        exists=True,
    ),
    output: Path = Arg(..., help="JSONL file (--format jsonl) or a folder (brat, tac-xml, table, fhir)."),
    input_format: Optional[str] = Opt(
        None, "--input-format", help=f"One of {', '.join(INPUT_FORMATS)}; default: from the path."
    ),
    id_field: str = Opt(
        "id", "--id-field", help="Field/column holding the document id (txt folders: the file path)."
    ),
    text_field: str = Opt("text", "--text-field", help="Field/column holding the note text."),
    max_chars: int = Opt(100_000, "--max-chars", help="Quarantine texts longer than this (0: no limit)."),
    fmt: str = Opt(
        "jsonl",
        "--format",
        "-f",
        help=f"Output: {', '.join(OUTPUT_FORMATS)}. table: one row per (document, reaction) as "
        "reactions.csv and reactions.parquet; fhir: AdverseEvent (notes) or ClinicalUseDefinition "
        "(labels) resources as NDJSON.",
    ),
    table_format: str = Opt(
        "csv,parquet", "--table-format", help="--format table: csv, parquet, or both (comma-separated)."
    ),
    fhir_kind: str = Opt(
        "note",
        "--fhir-kind",
        help="--format fhir: note (an AdverseEvent per reaction; needs --patient-field) or label "
        "(a ClinicalUseDefinition per reaction; the product is the label id).",
    ),
    fhir_bundle: bool = Opt(
        False, "--fhir-bundle/--fhir-ndjson", help="--format fhir: one transaction Bundle per document."
    ),
    include_negated: bool = Opt(
        False, "--include-negated", help="--format fhir: also write reactions ConText marks negated."
    ),
    patient_field: str = Opt("patient_id", "--patient-field", help="Field holding the patient id (FHIR subject)."),
    drug_field: str = Opt(
        "drug", "--drug-field", help="Field holding the suspect drug(s), used when no ADE-Drug link names one."
    ),
    label_field: str = Opt("label_id", "--label-field", help="Field holding the drug label id (labels)."),
    section_field: str = Opt("section", "--section-field", help="Field holding the label section name."),
    quarantine: Optional[Path] = Opt(
        None,
        "--quarantine",
        help="Bad records with reasons (default: OUTPUT.quarantine.jsonl, or quarantine.jsonl in the folder).",
    ),
    batch_size: int = Opt(64, "--batch-size", "-b", help="Docs per nlp.pipe batch."),
    n_process: int = Opt(1, "--n-process", "-n", help="Processes for nlp.pipe (local backend)."),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU to use; -1 for CPU."),
    inference: str = Opt(
        "fp32",
        "--inference",
        help="Tagger precision: fp32 (as trained), bf16 (fast on CPUs with AVX512-BF16/AMX) or int8 "
        "(dynamic quantisation); the README says what each costs in F1.",
    ),
    int8: bool = Opt(False, "--int8", help="Shortcut for --inference int8."),
    bucket_by_length: bool = Opt(
        False, "--bucket-by-length", help="Sort each batch's tagger windows by length, so short notes are not padded to long ones."
    ),
    checkpoint_every: int = Opt(
        1000, "--checkpoint-every", help="Commit output and resume state every N records."
    ),
    spans_key: str = Opt("mentions", "--spans-key", help="doc.spans key holding the mentions."),
    include_text: bool = Opt(
        False, "--include-text/--no-include-text", help="Copy the note text into each JSONL record."
    ),
    overwrite: bool = Opt(False, "--overwrite", help="Start from scratch, replacing earlier output."),
    progress: bool = Opt(True, "--progress/--no-progress", help="Progress bar with docs/s and ETA (stderr)."),
    backend: str = Opt("local", "--backend", help="local (nlp.pipe) or ray (Ray Data map_batches)."),
    ray_address: Optional[str] = Opt(
        None, "--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local instance)."
    ),
    ray_workers: int = Opt(1, "--ray-workers", help="Ray actors, each loading the model once."),
    ray_cpus: float = Opt(1.0, "--ray-cpus-per-worker", help="CPUs reserved per Ray actor."),
    recycle_every: int = Opt(
        50_000, "--recycle-every", help="Reload the pipeline every N docs: bounds vocab growth (0: never)."
    ),
    code: Optional[Path] = Opt(
        None, "--code", help="Python file with custom components to import first (also on Ray workers)."
    ),
    ray_gpus: float = Opt(0.0, "--ray-gpus-per-worker", help="GPUs reserved per Ray actor."),
    fail_fast: bool = Opt(
        False,
        "--fail-fast",
        help="Stop with the component's traceback at the first record a pipeline component raises on "
        "(default: quarantine that record with the error and go on).",
    ),
) -> None:
    """Run a pipeline over an EHR dump, one JSONL record per note (mentions,
    labels, MedDRA codes, relations, context attributes, model version), or
    a reaction table (CSV/Parquet) or FHIR resources for safety teams.

    Memory stays flat on any input size. A killed run, started again with the
    same arguments, resumes where it was committed and writes each document
    exactly once. Bad records (not UTF-8, empty, no id, too long) go to the
    quarantine file with the reason; the summary checks read = written +
    quarantined. Records that cannot make a valid row or FHIR resource (a
    note without a patient id, say) are quarantined too, with the reason,
    as are records a pipeline component raises on (its name, the exception's
    type and message). `clinie report OUTPUT` summarises a run."""
    from ..batch import PipeSettings, run_pipe

    settings = PipeSettings(
        input_format=input_format,
        id_field=id_field,
        text_field=text_field,
        max_chars=max_chars,
        output_format=fmt,
        quarantine=quarantine,
        batch_size=batch_size,
        n_process=n_process,
        gpu_id=gpu_id,
        checkpoint_every=checkpoint_every,
        spans_key=spans_key,
        include_text=include_text,
        overwrite=overwrite,
        progress=progress,
        backend=backend,
        ray_address=ray_address,
        ray_workers=ray_workers,
        ray_cpus_per_worker=ray_cpus,
        ray_gpus_per_worker=ray_gpus,
        code=code,
        recycle_every=recycle_every,
        patient_field=patient_field,
        drug_field=drug_field,
        label_field=label_field,
        section_field=section_field,
        table_formats=tuple(f.strip() for f in table_format.split(",") if f.strip()),
        fhir_kind=fhir_kind,
        fhir_bundle=fhir_bundle,
        fhir_include_negated=include_negated,
        inference="int8" if int8 else inference,
        bucket_by_length=bucket_by_length,
        fail_fast=fail_fast,
    )
    try:
        summary = run_pipe(model, input_path, output, settings)
    except (FormatError, ValueError, OSError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    if summary.already_complete:
        typer.echo(f"{output}: already complete")
    typer.echo(summary.line())
    typer.echo(f"output: {summary.output}\nquarantine: {summary.quarantine}")
    if not summary.consistent:
        typer.secho("error: read != written + quarantined", fg="red", err=True)
        raise typer.Exit(1)
