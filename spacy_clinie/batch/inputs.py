"""Lazy record readers for EHR dumps: JSONL, CSV, Parquet, a folder of .txt.

Every reader yields :class:`Record` objects in a fixed order, numbered from 0
(``index``). That number is what a resumed run skips to, so the order must be
the same on every read of an unchanged input: files are read front to back
and a folder is walked in sorted order. Nothing is loaded whole: JSONL and
CSV are read a line/row at a time, Parquet a record batch at a time, a
folder one file at a time.

A reader never raises on a bad record. It fills ``Record.reason`` instead
(bytes that are not UTF-8, a line that is not JSON, ...) and the record goes
to the quarantine file; :func:`check_record` adds the checks that are the
same for every format (missing id, empty or too long text).
"""

import csv
import gzip
import io
import json
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, Optional, Sequence, Tuple

from ..errors import FormatError
from ..formats import INPUT_FORMATS



@dataclass
class Record:
    """One input record. ``where`` names the file and line/row for messages;
    ``fields`` holds the extra fields asked for (``extra_fields``) that the
    record has, by field name."""

    index: int
    id: Optional[str]
    text: Optional[str]
    where: str
    reason: Optional[str] = None
    fields: Dict[str, Any] = field(default_factory=dict)


def detect_format(path: Path) -> str:
    """The input format from the path: a folder is ``txt``, otherwise the
    suffix (``.jsonl``/``.ndjson``/``.json``, ``.csv``, ``.tsv``, ``.parquet``,
    optionally ``.gz`` for the line formats)."""
    if path.is_dir():
        return "txt"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if last in (".csv", ".tsv"):
        return "csv"
    if last in (".parquet", ".pq"):
        return "parquet"
    raise FormatError(
        f"{path}: cannot tell the input format from the name; pass --input-format with one of {', '.join(INPUT_FORMATS)}"
    )


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


BOM = b"\xef\xbb\xbf"
# what reading a damaged .gz raises part-way: cut short, bad CRC or length,
# not gzip at all, or a corrupt deflate stream
STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _stream_error(err: BaseException) -> str:
    """Why the rest of a compressed file cannot be read, for the quarantine."""
    if isinstance(err, EOFError):
        what = "the compressed stream ends early (a truncated .gz)"
    elif isinstance(err, gzip.BadGzipFile) and "Not a gzipped file" in str(err):
        what = "not a gzip file"
    else:
        what = "the compressed data is corrupt"
    return f"{what}: {type(err).__name__}: {err}; the rest of the file cannot be read"


def _stream_failed(path: Path, err: BaseException, line_no: int, index: int, start: int) -> Iterator[Record]:
    """The unreadable rest of ``path`` as one quarantined record after the
    last good line; a file unreadable from its first byte is an error."""
    if line_no == 0:
        raise FormatError(f"{path}: {_stream_error(err)}") from err
    if index >= start:
        yield Record(index, None, None, f"{path.name} after line {line_no}", _stream_error(err))


def _field_str(value: Any) -> Optional[str]:
    """Ids may be numbers in JSON/Parquet (a bool is not a number here)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _typed(doc_id: Any, text: Any, id_field: str, text_field: str) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    """(id, text, reason): an id is a string or a number, the text a string;
    another type (a list, an object, a number for the text) is the reason."""
    doc_id = _field_str(doc_id)
    reason = None
    if doc_id is not None and not isinstance(doc_id, str):
        reason = f"field {id_field!r} is {type(doc_id).__name__}, not a string or number"
        doc_id = None
    if text is not None and not isinstance(text, str):
        reason = reason or f"field {text_field!r} is {type(text).__name__}, not a string"
        text = None
    return doc_id, text, reason


def _utf8_error(data: bytes) -> Optional[str]:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"not UTF-8 (byte 0x{data[err.start]:02x} at byte {err.start})"
    return None


def read_jsonl(
    path: Path, *, id_field: str, text_field: str, start: int = 0, extra_fields: Sequence[str] = ()
) -> Iterator[Record]:
    """One JSON object per line; blank lines are not records. Lines before
    record ``start`` are counted but not decoded."""
    index = 0
    line_no = 0
    with _open_binary(path) as f:
        lines = iter(f)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                break
            except STREAM_ERRORS as err:
                yield from _stream_failed(path, err, line_no, index, start)
                return
            line_no += 1
            if line_no == 1 and raw.startswith(BOM):  # files saved by Windows tools
                raw = raw[len(BOM) :]
            if not raw.strip():
                continue
            if index < start:
                index += 1
                continue
            where = f"{path.name} line {line_no}"
            error = _utf8_error(raw)
            line = raw.decode("utf-8", errors="replace")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                yield Record(index, None, None, where, error or f"not JSON ({err.msg} at column {err.colno})")
                index += 1
                continue
            except (ValueError, RecursionError) as err:  # a 5,000-digit number, nesting too deep
                yield Record(index, None, None, where, error or f"not JSON we can read ({type(err).__name__}: {err})")
                index += 1
                continue
            if not isinstance(obj, dict):
                yield Record(index, None, None, where, error or f"not a JSON object but {type(obj).__name__}")
                index += 1
                continue
            doc_id, text, reason = _typed(obj.get(id_field), obj.get(text_field), id_field, text_field)
            yield Record(
                index,
                doc_id,
                text,
                where,
                error or reason,
                {name: obj[name] for name in extra_fields if obj.get(name) is not None},
            )
            index += 1


def _surrogate_error(value: Optional[str]) -> Optional[str]:
    """CSV is decoded with ``surrogateescape`` so one bad byte spoils one
    record, not the file; a surrogate marks where it was."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        byte = ord(value[err.start]) - 0xDC00
        return f"not UTF-8 (byte 0x{byte:02x} at character {err.start})"
    return None


def read_csv(
    path: Path,
    *,
    id_field: str,
    text_field: str,
    start: int = 0,
    delimiter: Optional[str] = None,
    extra_fields: Sequence[str] = (),
) -> Iterator[Record]:
    """A CSV (or TSV, by suffix) with a header row naming the fields. Quoted
    fields may span lines; ``where`` gives the row's first line."""
    if delimiter is None:
        delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    _raise_csv_field_limit()
    with _open_binary(path) as fb:
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the first column name
        f = io.TextIOWrapper(fb, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except STREAM_ERRORS as err:
            raise FormatError(f"{path}: {_stream_error(err)}") from err
        except csv.Error as err:
            raise FormatError(f"{path}: the header row cannot be read ({err})") from err
        for name in (id_field, text_field):
            if name not in header:
                raise FormatError(f"{path}: no column {name!r} in the header; columns are {header}")
        id_col, text_col = header.index(id_field), header.index(text_field)
        extra_cols = [(name, header.index(name)) for name in extra_fields if name in header]
        index = 0
        line_no = reader.line_num + 1
        while True:
            where = f"{path.name} line {line_no}"
            try:
                row = next(reader)
            except StopIteration:
                break
            except STREAM_ERRORS as err:
                yield from _stream_failed(path, err, line_no - 1, index, start)
                return
            except csv.Error as err:  # e.g. a NUL byte; the reader goes on at the next line
                line_no = reader.line_num + 1
                if index >= start:
                    yield Record(index, None, None, where, f"not a CSV row ({err})")
                index += 1
                continue
            line_no = reader.line_num + 1
            if not row:
                continue
            if index < start:
                index += 1
                continue
            doc_id = row[id_col] if id_col < len(row) else None
            text = row[text_col] if text_col < len(row) else None
            reason = _surrogate_error(text) or _surrogate_error(doc_id)
            if reason is None and len(row) != len(header):
                reason = f"{len(row)} fields, the header has {len(header)}"
            if reason and doc_id is not None and _surrogate_error(doc_id):
                doc_id = doc_id.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            extra = {name: row[col] for name, col in extra_cols if col < len(row) and row[col] != ""}
            yield Record(index, doc_id, text, where, reason, extra)
            index += 1


def _raise_csv_field_limit() -> None:
    """csv refuses fields over 128 KiB by default; notes can be longer, and
    over-long ones are quarantined by ``max_chars`` with a clear reason."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise FormatError("reading Parquet needs pyarrow: pip install 'spacy-clinie[parquet]'") from err
    return pq


def read_parquet(
    path: Path,
    *,
    id_field: str,
    text_field: str,
    start: int = 0,
    batch_rows: int = 1024,
    extra_fields: Sequence[str] = (),
) -> Iterator[Record]:
    """Parquet, one record batch at a time; row groups wholly before
    ``start`` are not read. A binary text column is decoded here, so bytes
    that are not UTF-8 quarantine the row."""
    pq = _pyarrow_parquet()
    import pyarrow as pa

    try:
        pf = pq.ParquetFile(path)
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError, ValueError) as err:
        raise FormatError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from err
    for name in (id_field, text_field):
        if name not in names:
            raise FormatError(f"{path}: no column {name!r}; columns are {names}")
    columns = list(dict.fromkeys([id_field, text_field, *(n for n in extra_fields if n in names)]))
    extra = [(name, columns.index(name)) for name in dict.fromkeys(extra_fields) if name in names]
    index = 0
    for group in range(pf.num_row_groups):
        n_rows = pf.metadata.row_group(group).num_rows
        group_end = index + n_rows
        if group_end <= start:
            index = group_end
            continue
        batches = pf.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns)
        while True:
            try:
                batch = next(batches, None)
                if batch is None:
                    break
                values = [batch.column(k).to_pylist() for k in range(len(columns))]
            except (pa.ArrowException, OSError, ValueError) as err:
                # a damaged row group: its unread rows are quarantined one by
                # one (the metadata says how many), the next group is read
                reason = f"row group {group} cannot be read ({type(err).__name__}: {err})"
                for i in range(max(index, start), group_end):
                    yield Record(i, None, None, f"{path.name} row {i}", reason)
                index = group_end
                break
            ids, texts = values[0], values[columns.index(text_field)]
            for row, (doc_id, text) in enumerate(zip(ids, texts)):
                if index < start:
                    index += 1
                    continue
                where = f"{path.name} row {index}"
                reason = None
                if isinstance(doc_id, bytes):
                    reason = _utf8_error(doc_id)
                    doc_id = doc_id.decode("utf-8", "replace")
                if isinstance(text, bytes):
                    reason = reason or _utf8_error(text)
                    text = None if reason else text.decode("utf-8")
                doc_id, text, type_reason = _typed(doc_id, text, id_field, text_field)
                fields = {name: _json_value(values[col][row]) for name, col in extra if values[col][row] is not None}
                yield Record(index, doc_id, text, where, reason or type_reason, fields)
                index += 1


def _json_value(value: Any) -> Any:
    """A Parquet cell as JSON can hold it (dates and decimals as text)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _walk_txt(root: Path) -> Iterator[Path]:
    """``*.txt`` under ``root`` in sorted order, one directory listing in
    memory at a time."""
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir():
            yield from _walk_txt(Path(entry.path))
        elif entry.name.lower().endswith(".txt"):
            yield Path(entry.path)


def read_txt_folder(root: Path, *, start: int = 0, **_: Any) -> Iterator[Record]:
    """One record per ``.txt`` file; the id is the path relative to the
    folder without ``.txt`` (``ward3/note17``)."""
    for index, path in enumerate(_walk_txt(root)):
        if index < start:
            continue
        rel = path.relative_to(root).as_posix()
        doc_id = rel[: -len(".txt")]
        try:
            data = path.read_bytes()
        except OSError as err:  # unreadable, or a dangling link named .txt
            yield Record(index, doc_id, None, rel, f"cannot read the file ({err.strerror or err})")
            continue
        reason = _utf8_error(data)
        text = None if reason else data.decode("utf-8")
        yield Record(index, doc_id, text, rel, reason)


READERS: Dict[str, Callable[..., Iterator[Record]]] = {
    "jsonl": read_jsonl,
    "csv": read_csv,
    "parquet": read_parquet,
    "txt": read_txt_folder,
}


def check_record(record: Record, *, max_chars: int) -> Record:
    """Checks common to all formats, in the order a user would fix them.
    ``max_chars <= 0`` means no limit."""
    if record.reason:
        return record
    if record.id is None or not str(record.id).strip():
        record.reason = "missing id"
    elif record.text is None:
        record.reason = "missing text"
    elif not isinstance(record.text, str):
        record.reason = f"text is {type(record.text).__name__}, not a string"
    elif not record.text.strip():
        record.reason = "empty text"
    elif max_chars > 0 and len(record.text) > max_chars:
        record.reason = f"text has {len(record.text)} characters, over the limit of {max_chars}"
    return record


def read_records(
    path: Path,
    *,
    fmt: Optional[str] = None,
    id_field: str = "id",
    text_field: str = "text",
    max_chars: int = 0,
    start: int = 0,
    extra_fields: Sequence[str] = (),
) -> Iterator[Record]:
    """Checked records of ``path`` from record ``start`` on, with the
    ``extra_fields`` each has (a folder of .txt files has none)."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or folder")
    fmt = fmt or detect_format(path)
    if fmt not in READERS:
        raise FormatError(f"{path}: unknown input format {fmt!r}; choose one of {', '.join(INPUT_FORMATS)}")
    if fmt == "txt" and not path.is_dir():
        raise FormatError(f"{path}: the txt format reads a folder of .txt files")
    for record in READERS[fmt](
        path, id_field=id_field, text_field=text_field, start=start, extra_fields=tuple(extra_fields)
    ):
        yield check_record(record, max_chars=max_chars)


def estimate_total(path: Path, fmt: Optional[str] = None) -> Tuple[Optional[int], bool]:
    """The number of records for the progress bar's ETA, and whether it is
    exact. Parquet and folders are exact; JSONL and CSV count newlines (one
    fast pass over the bytes; quoted newlines and blank lines make it an upper
    bound)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "parquet":
        try:
            return _pyarrow_parquet().ParquetFile(path).metadata.num_rows, True
        except Exception:  # pyarrow's errors on a damaged file; read_parquet names them
            return None, False
    if fmt == "txt":
        return sum(1 for _ in _walk_txt(path)), True
    n = 0
    last = b"\n"
    with _open_binary(path) as f:
        while True:
            try:
                chunk = f.read(1 << 20)
            except STREAM_ERRORS:  # a damaged .gz: the readers report it, the estimate stops here
                break
            if not chunk:
                break
            n += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        n += 1
    if fmt == "csv":
        n = max(n - 1, 0)
    return n, False
