"""``clinie pipe --format table``: one row per (document, reaction), as CSV
and Parquet, for spreadsheets, dataframes and safety databases.

Column names follow OnSIDES' adverse-effect tables where the meaning is the
same (``effect_meddra_id``, ``meddra_name``, ``label_section``, ``label_id``,
``pred0``/``pred1``), so a team can join or stack our rows with theirs;
``COLUMNS`` says what each column holds (the README prints it).

The output is a folder. ``reactions.csv`` is append-only and committed by
size, like the JSONL output. Parquet cannot be appended to, so each commit
writes its rows as a part file (atomically) in ``.reactions.parquet.parts/``;
a restart deletes the parts written after the last commit, and the finished
run merges the parts into one ``reactions.parquet``.
"""

import csv
import io
import math
import os
import shutil
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from .checkpoint import fsync_dir, truncate
from .output import Sink
from .reactions import OutputError, Reaction, document_reactions, onsides_section

CSV_NAME = "reactions.csv"
PARQUET_NAME = "reactions.parquet"
PARTS_DIR = ".reactions.parquet.parts"
TABLE_FORMATS = ("csv", "parquet")

# (name, type, meaning); types: str, int, float, bool
COLUMNS: Tuple[Tuple[str, str, str], ...] = (
    ("document_id", "str", "the record's id (a note, or a label section)"),
    ("patient_id", "str", "from --patient-field (notes), else empty"),
    ("label_id", "str", "the drug label, from --label-field, else empty (OnSIDES: label_id)"),
    ("section", "str", "from --section-field, else the sectionizer's category of the first mention"),
    ("label_section", "str", "OnSIDES section code of `section`: AE, WP or BW (OnSIDES: label_section)"),
    ("reaction", "str", "the reaction: unique lowercased, whitespace-normalised ADR string"),
    ("effect_meddra_id", "int", "MedDRA PT code (OnSIDES: effect_meddra_id)"),
    ("meddra_name", "str", "MedDRA PT name (OnSIDES: meddra_name of effect_meddra_id)"),
    ("llt_meddra_id", "int", "MedDRA LLT code"),
    ("llt_meddra_name", "str", "MedDRA LLT name"),
    ("soc_meddra_id", "int", "MedDRA primary SOC code, when the terminology has the hierarchy"),
    ("soc_meddra_name", "str", "MedDRA primary SOC name"),
    ("n_mentions", "int", "mentions of the reaction in the document"),
    ("first_start", "int", "character offset of the first mention"),
    ("first_end", "int", "end offset of the first mention"),
    ("pred1", "float", "extraction confidence, the highest of the mentions' (OnSIDES: pred1)"),
    ("pred0", "float", "1 - pred1 (OnSIDES: pred0)"),
    ("negated", "bool", "ConText: every mention is negated"),
    ("hypothetical", "bool", "ConText: every affirmed mention is hypothetical"),
    ("drug_name", "str", "suspect drug: the best ADE-Drug link, else --drug-field"),
    ("drug_ids", "str", "the drug's ids, system:code joined by |"),
    ("drug_source", "str", "link or field"),
    ("drug_link_score", "float", "score of the ADE-Drug link"),
    ("drug_link_method", "str", "what made the link (model or rule)"),
    ("pipeline", "str", "pipeline name and version"),
    ("clinie_version", "str", "spacy-clinie version"),
)
COLUMN_NAMES = [c[0] for c in COLUMNS]


def _code(value: Optional[str]) -> Optional[int]:
    return int(value) if value else None


def reaction_row(record: Dict[str, Any], reaction: Reaction) -> Dict[str, Any]:
    meta = record.get("meta") or {}
    meddra = reaction.meddra
    section = meta.get("section") or reaction.section_category
    first = reaction.mentions[0]
    drug = reaction.drug
    conf = reaction.confidence
    return {
        "document_id": record["id"],
        "patient_id": None if meta.get("patient_id") is None else str(meta["patient_id"]),
        "label_id": None if meta.get("label_id") is None else str(meta["label_id"]),
        "section": None if section is None else str(section),
        "label_section": onsides_section(section if isinstance(section, str) else None),
        "reaction": reaction.reaction,
        "effect_meddra_id": _code(meddra.get("meddra_pt_id")),
        "meddra_name": meddra.get("meddra_pt") or None,
        "llt_meddra_id": _code(meddra.get("meddra_llt_id")),
        "llt_meddra_name": meddra.get("meddra_llt") or None,
        "soc_meddra_id": _code(meddra.get("soc_id")),
        "soc_meddra_name": meddra.get("soc") or None,
        "n_mentions": len(reaction.mentions),
        "first_start": first["start"],
        "first_end": first["end"],
        "pred1": conf,
        "pred0": None if conf is None or math.isnan(conf) else round(1.0 - conf, 6),
        "negated": reaction.negated,
        "hypothetical": reaction.hypothetical,
        "drug_name": drug.name if drug else None,
        "drug_ids": (drug.ids or None) if drug else None,
        "drug_source": drug.source if drug else None,
        "drug_link_score": drug.score if drug else None,
        "drug_link_method": drug.method if drug else None,
        "pipeline": record.get("model"),
        "clinie_version": record.get("clinie_version"),
    }


def reaction_rows(record: Dict[str, Any], *, drug_field: str = "drug") -> List[Dict[str, Any]]:
    """The table rows of one batch record (none for a note without
    reactions). Raises :class:`OutputError` for content a row cannot hold."""
    return [reaction_row(record, r) for r in document_reactions(record, drug_field=drug_field)]


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_line(values: Sequence[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_csv_cell(v) for v in values])
    return buf.getvalue().encode("utf-8")


def arrow_schema() -> Any:
    import pyarrow as pa

    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    return pa.schema([(name, types[kind]) for name, kind, _ in COLUMNS])


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ValueError("--format table writes Parquet with pyarrow: pip install 'spacy-clinie[parquet]'") from err
    return pq


class TableSink(Sink):
    """``--format table``: ``reactions.csv`` and/or ``reactions.parquet`` in
    a folder. A record whose reactions cannot make rows is rejected whole."""

    may_reject = True

    def __init__(
        self,
        folder: Path,
        *,
        formats: Sequence[str] = TABLE_FORMATS,
        positions: Optional[Dict[str, int]] = None,
        drug_field: str = "drug",
    ) -> None:
        unknown = [f for f in formats if f not in TABLE_FORMATS]
        if unknown or not formats:
            raise ValueError(f"table formats must be among {', '.join(TABLE_FORMATS)}, got {list(formats)}")
        positions = positions or {}
        self.folder = folder
        self.drug_field = drug_field
        folder.mkdir(parents=True, exist_ok=True)
        self._csv: Optional[IO[bytes]] = None
        if "csv" in formats:
            path = folder / CSV_NAME
            committed = positions.get("csv", 0)
            if committed or path.exists():
                truncate(path, committed)
            self._csv = open(path, "ab")
            if committed == 0:
                self._csv.write(_csv_line(COLUMN_NAMES))
        self._parts: Optional[Path] = None
        self._buffer: List[Dict[str, Any]] = []
        self._n_parts = positions.get("parquet_parts", 0)
        self._finished = False
        if "parquet" in formats:
            _pyarrow_parquet()
            self._parts = folder / PARTS_DIR
            self._parts.mkdir(exist_ok=True)
            for part in self._parts.glob("part-*.parquet"):
                if int(part.stem.split("-")[1]) >= self._n_parts:
                    part.unlink()  # written after the last commit
            missing = [n for n in range(self._n_parts) if not self._part_path(n).exists()]
            if missing:
                raise ValueError(
                    f"{self._parts}: part {missing[0]} of {self._n_parts} committed is missing; "
                    "the folder was changed outside this run. Pass --overwrite to start again."
                )
            (folder / PARQUET_NAME).unlink(missing_ok=True)  # an unfinished run's merge

    def _part_path(self, n: int) -> Path:
        assert self._parts is not None
        return self._parts / f"part-{n:06d}.parquet"

    def write(self, doc_id: str, doc: Optional[Doc], record: Dict[str, Any]) -> Optional[str]:
        try:
            rows = reaction_rows(record, drug_field=self.drug_field)
        except OutputError as err:
            return f"no table rows: {err}"
        if self._csv is not None:
            self._csv.write(b"".join(_csv_line([row[c] for c in COLUMN_NAMES]) for row in rows))
        if self._parts is not None:
            self._buffer.extend(rows)
        return None

    def _write_part(self) -> None:
        pq = _pyarrow_parquet()
        import pyarrow as pa

        path = self._part_path(self._n_parts)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        pq.write_table(pa.Table.from_pylist(self._buffer, schema=arrow_schema()), tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
        self._n_parts += 1
        self._buffer = []

    def sync(self) -> Dict[str, int]:
        positions: Dict[str, int] = {}
        if self._csv is not None:
            self._csv.flush()
            os.fsync(self._csv.fileno())
            positions["csv"] = self._csv.tell()
        if self._parts is not None:
            if self._buffer:
                self._write_part()
            positions["parquet_parts"] = self._n_parts
        return positions

    def finish(self) -> None:
        """Merge the committed parts into ``reactions.parquet``, one part in
        memory at a time (an empty table when no document had a reaction)."""
        if self._parts is None:
            return
        pq = _pyarrow_parquet()
        if self._buffer:
            self._write_part()
        target = self.folder / PARQUET_NAME
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        with pq.ParquetWriter(tmp, arrow_schema()) as writer:
            for n in range(self._n_parts):
                writer.write_table(pq.read_table(self._part_path(n), schema=arrow_schema()))
            if self._n_parts == 0:
                import pyarrow as pa

                writer.write_table(pa.Table.from_pylist([], schema=arrow_schema()))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(self.folder)
        self._finished = True

    def close(self) -> None:
        if self._csv is not None and not self._csv.closed:
            self._csv.flush()
            os.fsync(self._csv.fileno())
            self._csv.close()
        if self._finished and self._parts is not None:
            shutil.rmtree(self._parts, ignore_errors=True)


def _csv_value(kind: str, text: str) -> Any:
    if text == "":
        return None
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "true"
    return text


def read_table(folder: Path, fmt: Optional[str] = None) -> List[Dict[str, Any]]:
    """The rows of a table output, typed as ``COLUMNS`` says: from
    ``reactions.parquet`` when there is one (or ``fmt="parquet"``), else
    from ``reactions.csv``."""
    folder = Path(folder)
    parquet, csv_path = folder / PARQUET_NAME, folder / CSV_NAME
    if fmt == "parquet" or (fmt is None and parquet.exists()):
        return _pyarrow_parquet().read_table(parquet).to_pylist()
    if not csv_path.exists():
        raise ValueError(f"{folder}: no {PARQUET_NAME} or {CSV_NAME}; is it a finished `clinie pipe --format table` output?")
    kinds = {name: kind for name, kind, _ in COLUMNS}
    with open(csv_path, encoding="utf-8", newline="") as f:
        return [{k: _csv_value(kinds.get(k, "str"), v) for k, v in row.items()} for row in csv.DictReader(f)]
