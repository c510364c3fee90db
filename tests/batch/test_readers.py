import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spacy_clinie.batch.inputs import detect_format, estimate_total, read_records
from spacy_clinie.errors import FormatError

from .conftest import good_records, json_line, write_jsonl


def _pairs(records):
    return [(r.index, r.id, r.text, r.reason) for r in records]


@pytest.fixture
def rows():
    return good_records(7)


@pytest.fixture
def same_data(tmp_path, rows):
    """The same seven notes as JSONL, CSV, Parquet and a txt folder."""
    jsonl = write_jsonl(tmp_path / "notes.jsonl", [json_line(r) for r in rows])
    with open(tmp_path / "notes.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["text", "id"])
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "notes.parquet", row_group_size=3)
    folder = tmp_path / "notes"
    folder.mkdir()
    for r in rows:
        (folder / f"{r['id']}.txt").write_text(r["text"], encoding="utf-8")
    return {
        "jsonl": jsonl,
        "csv": tmp_path / "notes.csv",
        "parquet": tmp_path / "notes.parquet",
        "txt": folder,
    }


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "txt"])
def test_formats_give_the_same_records(same_data, rows, fmt):
    path = same_data[fmt]
    assert detect_format(path) == fmt
    got = _pairs(read_records(path))
    expected = [(i, r["id"], r["text"], None) for i, r in enumerate(rows)]
    if fmt == "txt":  # files come in sorted name order
        expected = [
            (i, rid, text, None) for i, (_, rid, text, _) in enumerate(sorted(expected, key=lambda e: e[1]))
        ]
    assert got == expected
    # resuming at record 4 gives the same tail, with the same indices
    assert _pairs(read_records(path, start=4)) == expected[4:]
    total, exact = estimate_total(path)
    assert total == len(rows)
    assert exact == (fmt in ("parquet", "txt"))


def test_jsonl_bad_records_have_reasons(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            json_line({"id": "ok", "text": "fine"}),
            b'{"id": "latin1", "text": "caf\xe9"}',
            json_line({"id": "blank", "text": "  \n "}),
            json_line({"text": "who am I"}),
            json_line({"id": "", "text": "empty id"}),
            json_line({"id": "long", "text": "x" * 51}),
            b"{broken",
            json_line(["a", "list"]),
            json_line({"id": "num", "text": 42}),
            json_line({"id": "notext"}),
            b"",  # blank line: not a record
            json_line({"id": 7, "text": "numeric id is fine"}),
        ],
    )
    got = {r.index: (r.id, r.reason) for r in read_records(path, max_chars=50)}
    assert got[0] == ("ok", None)
    assert got[1][0] == "latin1" and got[1][1].startswith("not UTF-8 (byte 0xe9")
    assert got[2] == ("blank", "empty text")
    assert got[3] == (None, "missing id")
    assert got[4] == ("", "missing id")
    assert got[5] == ("long", "text has 51 characters, over the limit of 50")
    assert got[6][1].startswith("not JSON")
    assert got[7][1] == "not a JSON object but list"
    assert got[8][1] == "field 'text' is int, not a string"
    assert got[9] == ("notext", "missing text")
    assert got[10] == ("7", None)
    assert len(got) == 11
    where = {r.index: r.where for r in read_records(path)}
    assert where[10] == "bad.jsonl line 12"


def test_csv_bad_byte_spoils_one_row(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b'id,text\na,"nausea, and\na rash"\nb,caf\xe9 rash\nc,headache\n,no id\nd\n')
    got = [(r.index, r.id, r.reason, r.where) for r in read_records(path)]
    assert got[0] == (0, "a", None, "notes.csv line 2")
    assert got[1][2].startswith("not UTF-8 (byte 0xe9") and got[1][3] == "notes.csv line 4"
    assert got[2] == (2, "c", None, "notes.csv line 5")
    assert got[3][2] == "missing id"
    assert got[4][2] == "1 fields, the header has 2"
    assert next(read_records(path)).text == "nausea, and\na rash"


def test_parquet_binary_column_and_missing_column(tmp_path):
    path = tmp_path / "bin.parquet"
    table = pa.table({"note_id": ["a", "b"], "body": pa.array([b"rash", b"caf\xe9"], pa.binary())})
    pq.write_table(table, path)
    got = [(r.id, r.text, r.reason) for r in read_records(path, id_field="note_id", text_field="body")]
    assert got[0] == ("a", "rash", None)
    assert got[1][2].startswith("not UTF-8")
    with pytest.raises(FormatError, match=r"bin.parquet: no column 'text'"):
        list(read_records(path, id_field="note_id"))


def test_txt_folder_nested_and_bad_files(tmp_path):
    (tmp_path / "w2").mkdir()
    (tmp_path / "w2" / "b.txt").write_text("rash", encoding="utf-8")
    (tmp_path / "a.txt").write_bytes(b"\xff\xfe")
    (tmp_path / "c.txt").write_text("", encoding="utf-8")
    (tmp_path / "skip.md").write_text("not a note", encoding="utf-8")
    got = [(r.id, r.reason) for r in read_records(tmp_path)]
    assert [g[0] for g in got] == ["a", "c", "w2/b"]
    assert got[0][1].startswith("not UTF-8 (byte 0xff")
    assert got[1][1] == "empty text"
    assert got[2][1] is None


def test_unknown_format_names_the_file(tmp_path):
    path = tmp_path / "dump.xlsx"
    path.write_text("x")
    with pytest.raises(FormatError, match="dump.xlsx: cannot tell the input format"):
        list(read_records(path))
