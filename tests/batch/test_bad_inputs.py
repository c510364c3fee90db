"""Inputs that used to end ``clinie pipe`` with a raw traceback (issue 24,
items 4-6): each is now read, or quarantined with a reason naming the file
and record, and ``read = written + quarantined`` holds."""

import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from spacy_clinie.batch import PipeSettings, run_pipe
from spacy_clinie.batch.inputs import estimate_total, read_records
from spacy_clinie.cli import app
from spacy_clinie.errors import FormatError

from .conftest import good_records, json_line, read_jsonl


def settings(**kw):
    return PipeSettings(**{"progress": False, "batch_size": 8, "checkpoint_every": 5, **kw})


def quarantined(out):
    return read_jsonl(out.with_name(out.name + ".quarantine.jsonl"))


def test_parquet_with_a_numeric_text_column(tmp_path, light_model):
    """Item 4: ``.strip()`` of an int raised AttributeError."""
    path = tmp_path / "numeric.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": pa.array([1, 2, None], pa.int64())}), path)
    mixed = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"id": [["x"], ["y"]], "text": ["nausea", "rash"]}), mixed)
    out = tmp_path / "out.jsonl"
    summary = run_pipe(light_model, path, out, settings())
    assert (summary.read, summary.written, summary.quarantined) == (3, 0, 3)
    reasons = [q["reason"] for q in quarantined(out)]
    assert reasons == ["field 'text' is int, not a string"] * 2 + ["missing text"]
    assert [q["where"] for q in quarantined(out)] == ["numeric.parquet row 0", "numeric.parquet row 1", "numeric.parquet row 2"]
    out2 = tmp_path / "out2.jsonl"
    summary = run_pipe(light_model, mixed, out2, settings())
    assert (summary.read, summary.written, summary.quarantined) == (2, 0, 2)
    assert [q["reason"] for q in quarantined(out2)] == ["field 'id' is list, not a string or number"] * 2


def _gz_jsonl(path, n):
    data = b"".join(json_line(r) + b"\n" for r in good_records(n))
    path.write_bytes(gzip.compress(data))
    return path


def test_truncated_gz_quarantines_the_unreadable_rest(tmp_path, light_model):
    """Item 5: a .gz cut short raised EOFError (in the progress bar's count
    and in the reader). The records before the cut are processed; the rest
    of the file is one quarantine entry that says where and why."""
    whole = _gz_jsonl(tmp_path / "whole.jsonl.gz", 400)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 3])
    total, exact = estimate_total(cut)
    assert total is not None and not exact
    out = tmp_path / "out.jsonl"
    summary = run_pipe(light_model, cut, out, settings(progress=True))
    assert summary.consistent and summary.quarantined == 1 and 0 < summary.written < 400
    [entry] = quarantined(out)
    assert entry["index"] == summary.written
    assert entry["where"].startswith("cut.jsonl.gz after line ")
    assert "ends early" in entry["reason"] and "rest of the file cannot be read" in entry["reason"]
    assert [r["id"] for r in read_jsonl(out)] == [f"note-{i}" for i in range(summary.written)]
    # the same file through the CLI: exit 0 and the counts, no traceback
    result = CliRunner().invoke(app, ["pipe", str(light_model), str(cut), str(tmp_path / "cli.jsonl"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"read {summary.read} = written {summary.written} + quarantined 1" in result.output


@pytest.mark.parametrize("where", [0.3, 0.6, 0.999])
def test_bit_flipped_gz_is_reported(tmp_path, where):
    """A flipped bit inside the compressed data (zlib.error) or its CRC
    (BadGzipFile) ends the readable part the same way."""
    data = bytearray(_gz_jsonl(tmp_path / "a.jsonl.gz", 300).read_bytes())
    pos = int(len(data) * where)
    data[pos] ^= 0x10
    bad = tmp_path / "flipped.jsonl.gz"
    bad.write_bytes(bytes(data))
    records = list(read_records(bad))
    assert records[-1].reason and "flipped.jsonl.gz" not in records[-1].reason
    assert records[-1].where.startswith("flipped.jsonl.gz after line ")
    assert all(r.index == i for i, r in enumerate(records))
    estimate_total(bad)  # no exception


def test_gz_that_is_not_gzip(tmp_path, light_model):
    """Unreadable from the first byte: a clear error naming the file."""
    fake = tmp_path / "plain.jsonl.gz"
    fake.write_bytes(json_line({"id": "a", "text": "nausea"}) + b"\n")
    with pytest.raises(FormatError, match=r"plain.jsonl.gz: not a gzip file"):
        list(read_records(fake))
    result = CliRunner().invoke(app, ["pipe", str(light_model), str(fake), str(tmp_path / "o.jsonl"), "--no-progress"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "plain.jsonl.gz: not a gzip file" in result.output


def test_csv_with_a_byte_order_mark(tmp_path, light_model):
    """Item 6: a UTF-8 BOM before the header gave "no column 'id'"."""
    rows = good_records(5)
    body = "id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in rows)
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    out = tmp_path / "out.jsonl"
    summary = run_pipe(light_model, path, out, settings())
    assert (summary.read, summary.written, summary.quarantined) == (5, 5, 0)
    assert [r["id"] for r in read_jsonl(out)] == [r["id"] for r in rows]
    # and gzipped, and a JSONL file whose first line carries the BOM
    gz = tmp_path / "excel.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert [r.id for r in read_records(gz)] == [r["id"] for r in rows]
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + b"".join(json_line(r) + b"\n" for r in rows))
    assert [(r.id, r.reason) for r in read_records(jsonl)] == [(r["id"], None) for r in rows]

