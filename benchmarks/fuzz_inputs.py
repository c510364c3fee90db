"""Fuzz ``clinie convert`` and ``clinie pipe`` with bad input (issue 24).

Inputs are made from the real corpus in ``../shared/corpus`` (TAC 2017
OnSIDES sections, their TAC XML and brat renderings, EU-ADR rows) and
mutated: truncated, bit-flipped, re-encoded (Latin-1, UTF-16, a BOM),
fields of the wrong type, huge fields (multi-megabyte texts, 5,000-digit
numbers, deep nesting), lines dropped or duplicated, garbage and NUL bytes,
damaged .gz and Parquet files. Every input must end in one of:

- converted / completed: ``convert`` wrote .spacy files, or ``run_pipe``
  finished with ``read = written + quarantined`` (checked against the
  output and quarantine files' line counts);
- reported: a ``FormatError`` (or the ``ValueError`` / ``OSError`` the CLI
  turns into ``error: ...``) whose message names the input file;

anything else is a crash (a raw traceback in the CLI). ``convert`` is also
reconciled where the source can be counted independently: sections or
documents in = docs out + skipped. An input that runs past ``--hang-after``
seconds is a hang: the watchdog dumps the stacks and ends its shard.

Most runs call ``convert()`` / ``run_pipe()`` in-process, exactly what the
CLI commands call; every ``--cli-every``-th input also runs as a real
``python -m spacy_clinie`` subprocess, which must exit 0 or 1 and print no
traceback. ``clinie pipe`` runs a small pipeline built here: a blank English
tokenizer, a span_ruler with the train split's reaction strings and
``fuzz_flaky``, a component that raises on about 3% of the notes (so that
per-record isolation, issue 24 item 7, is fuzzed too).

    python benchmarks/fuzz_inputs.py --n-convert 1200 --n-pipe 1200 --shards 2

Each input is made from its own seeded generator, so ``--shards`` (worker
processes) changes the wall time, not the inputs. The counts are printed as
JSON: outcomes per command, per mutation kind (truncated, bit-flipped, wrong
encoding, wrong types, huge fields, structure) and per input format, the
subprocess runs' exit codes, and the pipe totals.

This file is also passed to ``clinie pipe --code`` to register
``fuzz_flaky`` in the subprocess runs.
"""

import argparse
import gzip
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from spacy.language import Language
from spacy.tokens import Doc

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("CLINIE_CORPUS", ROOT.parent / "shared" / "corpus"))
FLAKY_EVERY = 31  # fuzz_flaky raises on notes whose crc32 % FLAKY_EVERY == 0


class FlakyComponentError(RuntimeError):
    pass


@Language.factory("fuzz_flaky", default_config={"every": FLAKY_EVERY})
def make_fuzz_flaky(nlp: Language, name: str, every: int):
    """Raises on a fixed ~1/every of the notes (by CRC of the text), like a
    component with a bug that some inputs trigger."""

    def flaky(doc: Doc) -> Doc:
        if every and zlib.crc32(doc.text.encode("utf-8", "surrogatepass")) % every == 0:
            raise FlakyComponentError(f"fuzz_flaky fails on this note ({len(doc.text)} chars)")
        return doc

    return flaky


# ----------------------------------------------------------------- corpus


def load_sections(split: str = "train") -> List[Dict[str, Any]]:
    return json.loads((CORPUS / "tac2017_adr" / f"{split}.json").read_text(encoding="utf-8"))


def reaction_strings(sections: List[Dict[str, Any]], n: int = 400) -> List[str]:
    seen: Counter = Counter()
    for sec in sections:
        for entry in sec["adverse_events"]:
            if isinstance(entry[0], str):
                seen[entry[0].lower()] += 1
    return [s for s, _ in seen.most_common(n)]


def build_model(path: Path, sections: List[Dict[str, Any]]) -> Path:
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": "mentions"})
    patterns = [{"label": "AdverseReaction", "pattern": [{"LOWER": w} for w in s.split()]} for s in reaction_strings(sections)]
    ruler.add_patterns(patterns)
    nlp.add_pipe("fuzz_flaky")
    nlp.meta["name"] = "fuzz"
    nlp.meta["version"] = "0.0.1"
    nlp.to_disk(path)
    return path


# ----------------------------------------------------------------- byte mutators


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(0, max(1, len(data)))]


def bitflip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def garbage(rng: random.Random, data: bytes) -> bytes:
    pos = rng.randrange(len(data) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return data[:pos] + junk + data[pos:]


def nul_bytes(rng: random.Random, data: bytes) -> bytes:
    pos = rng.randrange(len(data) + 1)
    return data[:pos] + b"\x00" * rng.randint(1, 4) + data[pos:]


def latin1(rng: random.Random, data: bytes) -> bytes:
    return data.decode("utf-8", "replace").encode(rng.choice(["latin-1", "cp1252"]), "replace")


def utf16(rng: random.Random, data: bytes) -> bytes:
    return data.decode("utf-8", "replace").encode(rng.choice(["utf-16", "utf-16-le"]))


def bom(rng: random.Random, data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data


def drop_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(line for line in lines if rng.random() > 0.2)


def dup_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    out = []
    for line in lines:
        out.append(line)
        if rng.random() < 0.2:
            out.append(line)
    return b"".join(out)


def crlf(rng: random.Random, data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def empty(rng: random.Random, data: bytes) -> bytes:
    return rng.choice([b"", b"   \n\n", b"\n"])


BYTE_MUTATORS: List[Callable[[random.Random, bytes], bytes]] = [
    truncate, bitflip, garbage, nul_bytes, latin1, utf16, bom, drop_lines, dup_lines, crlf, empty,
]


def byte_mutate(rng: random.Random, data: bytes) -> Tuple[bytes, List[str]]:
    names = []
    for _ in range(rng.choice([1, 1, 1, 2])):
        fn = rng.choice(BYTE_MUTATORS)
        data = fn(rng, data)
        names.append(fn.__name__)
    return data, names


# ----------------------------------------------------------------- value mutators


def wrong_value(rng: random.Random, huge: bool = True) -> Any:
    choices: List[Any] = [
        None, 0, -1, 3.5, float("nan"), True, [], ["a", 1], {}, {"x": [1, {"y": None}]}, "", "   ",
        "\u0000\ufffd\ud7ff", "é" * 50,
    ]
    if huge:
        choices += ["9" * 5000, "rash " * rng.choice([30_000, 250_000]), [[[[[]]]]]]
    return rng.choice(choices)


def deep(n: int = 50_000) -> str:
    return "[" * n + "]" * n


# ----------------------------------------------------------------- convert inputs


def sample_sections(rng: random.Random, sections: List[Dict[str, Any]], k: int) -> List[Dict[str, Any]]:
    picked = [json.loads(json.dumps(s)) for s in rng.sample(sections, k)]
    for s in picked:  # keep the runs fast: cut long sections (offsets beyond become bad entries)
        if len(s["section_text"]) > 6000 and rng.random() < 0.8:
            s["section_text"] = s["section_text"][:6000]
    return picked


def mutate_onsides(rng: random.Random, secs: List[Dict[str, Any]]) -> List[str]:
    names = []
    for _ in range(rng.randint(1, 3)):
        objects = [s for s in secs if isinstance(s, dict)]
        if not objects:
            break
        sec = rng.choice(objects)
        kind = rng.choice(["field", "entry", "entry_field", "drop_key", "huge_text", "events_str", "dup", "not_obj"])
        names.append(f"onsides:{kind}")
        if kind == "field":
            sec[rng.choice(["label_id", "section_name", "section_text", "adverse_events"])] = wrong_value(rng, huge=False)
        elif kind == "entry" and isinstance(sec.get("adverse_events"), list) and sec["adverse_events"]:
            i = rng.randrange(len(sec["adverse_events"]))
            sec["adverse_events"][i] = wrong_value(rng)
        elif kind == "entry_field" and isinstance(sec.get("adverse_events"), list) and sec["adverse_events"]:
            entry = rng.choice(sec["adverse_events"])
            if isinstance(entry, list) and entry:
                j = rng.randrange(len(entry))
                entry[j] = rng.choice([wrong_value(rng), str(10**9), "-5", "12,4", None])
        elif kind == "drop_key" and sec:
            sec.pop(rng.choice(list(sec)), None)
        elif kind == "huge_text":
            sec["section_text"] = ("Nausea and rash were reported. " * 40_000)[: rng.choice([200_000, 1_200_000])]
        elif kind == "events_str":
            sec["adverse_events"] = rng.choice(["[['rash', nan", "__import__('os')", repr(sec.get("adverse_events"))[:50], deep(2000)])
        elif kind == "dup":
            secs.append(json.loads(json.dumps(sec)))
        elif kind == "not_obj":
            secs[secs.index(sec)] = wrong_value(rng)
    return names


def xml_of(nlp: Any, secs: List[Dict[str, Any]], tmp: Path) -> List[Path]:
    """The sections as official TAC XML files, one per label."""
    from spacy_clinie.readers import read_onsides, write_tac_xml

    src = tmp / "src.json"
    src.write_text(json.dumps(secs), encoding="utf-8")
    docs = list(read_onsides(nlp, src))
    return write_tac_xml(docs, tmp / "xml")


def mutate_xml_text(rng: random.Random, text: str) -> Tuple[str, List[str]]:
    names = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["attr", "close", "dup_id", "section", "entity", "huge", "nested"])
        names.append(f"xml:{kind}")
        if kind == "attr":
            attr = rng.choice(['start="', 'len="', 'section="', 'id="', 'type="', 'str="'])
            pos = text.find(attr, rng.randrange(max(1, len(text))))
            if pos >= 0:
                end = text.find('"', pos + len(attr))
                value = rng.choice(["-3", "x", "", "1,2,3", "99999999", "S99", "12,4", "\u00e9"])
                text = text[: pos + len(attr)] + value + text[end:]
        elif kind == "close":
            text = text.replace(rng.choice(["</Section>", "</Mentions>", "</Label>", "/>"]), "", 1)
        elif kind == "dup_id":
            text = text.replace('id="M2"', 'id="M1"')
        elif kind == "section":
            text = text.replace("<Section ", "<Section ", 1).replace('id="S1"', "", 1)
        elif kind == "entity":
            text = text.replace("<Text>", '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><Text>&a;', 1)
        elif kind == "huge":
            text = text.replace("</Section>", "Rash. " * 200_000 + "</Section>", 1)
        elif kind == "nested":
            text = text.replace("<Mentions>", "<Mentions>" + "<x>" * 5000 + "</x>" * 5000, 1)
    return text, names


def brat_of(nlp: Any, secs: List[Dict[str, Any]], tmp: Path) -> Path:
    from spacy_clinie.readers import read_onsides, write_brat

    src = tmp / "src.json"
    src.write_text(json.dumps(secs), encoding="utf-8")
    docs = list(read_onsides(nlp, src))
    for i, d in enumerate(docs):
        d._.doc_id = f"doc{i}"
    write_brat(docs, tmp / "brat")
    return tmp / "brat"


def mutate_brat(rng: random.Random, folder: Path) -> List[str]:
    names = []
    for _ in range(rng.randint(1, 3)):
        anns = sorted(folder.glob("*.ann"))
        if not anns:
            break
        ann = rng.choice(anns)
        txt = ann.with_suffix(".txt")
        lines = ann.read_text(encoding="utf-8").splitlines()
        kind = rng.choice(["offsets", "dup_id", "whitespace", "relation", "garbage", "txt_bytes", "no_ann", "bad_tab", "huge_txt"])
        names.append(f"brat:{kind}")
        if kind == "offsets" and lines:
            i = rng.randrange(len(lines))
            parts = lines[i].split("\t")
            if len(parts) == 3:
                parts[1] = parts[1].split(" ")[0] + " " + rng.choice(["-1 4", "5 2", "0 99999999", "a b", "3 3", "1 2;", "2 5;9 7"])
                lines[i] = "\t".join(parts)
        elif kind == "dup_id" and lines:
            lines.append(lines[0])
        elif kind == "whitespace":
            text = txt.read_bytes().decode("utf-8", "replace")  # an earlier txt_bytes may have broken it
            pos = text.find(" ")
            if pos >= 0:
                lines.append(f"T999\tAdverseReaction {pos} {pos + 1}\t ")
        elif kind == "relation":
            lines.append("R77\tEffect Arg1:T1 Arg2:T12345")
        elif kind == "garbage":
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(["Q1\tnonsense", "T5", "\t\t", "A1\tNegated", "#1\tAnnotatorNotes"]))
        elif kind == "txt_bytes":
            data, sub = byte_mutate(rng, txt.read_bytes())
            txt.write_bytes(data)
            names += sub
            continue
        elif kind == "no_ann":
            ann.unlink()
            continue
        elif kind == "bad_tab":
            lines = [line.replace("\t", " ", 1) if rng.random() < 0.3 else line for line in lines]
        elif kind == "huge_txt":
            txt.write_bytes(txt.read_bytes() + b"Rash. " * 250_000)
        ann.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return names


def euadr_rows(rng: random.Random, k: int) -> Tuple[str, List[str]]:
    lines = (CORPUS / "euadr" / "EUADR_drug_disease.csv").read_text(encoding="utf-8").splitlines()
    return lines[0], rng.sample(lines[1:], k)


def mutate_euadr(rng: random.Random, header: str, rows: List[str]) -> Tuple[str, List[str], List[str]]:
    names = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["cell", "header", "ragged", "quote", "huge"])
        names.append(f"euadr:{kind}")
        i = rng.randrange(len(rows))
        cells = rows[i].split("\t")
        if kind == "cell":
            j = rng.randrange(len(cells))
            cells[j] = rng.choice(["", "x", "-7", "99999", '"', "9" * 5000, "NaN"])
            rows[i] = "\t".join(cells)
        elif kind == "header":
            header = header.replace(rng.choice(['"SENTENCE"', '"ENTITY1_INI"', '"PMID"']), '"OTHER"', 1)
        elif kind == "ragged":
            rows[i] = "\t".join(cells[: rng.randrange(len(cells))])
        elif kind == "quote":
            rows[i] = rows[i].replace('"', "", 1)
        elif kind == "huge":
            cells[-1] = '"' + "word " * 300_000 + '"'
            rows[i] = "\t".join(cells)
    return header, rows, names


def make_convert_input(rng: random.Random, nlp: Any, sections: List[Dict[str, Any]], tmp: Path) -> Tuple[Path, str, List[str], Optional[Dict[str, int]]]:
    """(path, format, mutations, independent source counts or None)."""
    fmt = rng.choice(["tac-onsides", "tac-onsides", "tac-xml", "brat", "euadr"])
    names: List[str] = []
    if fmt == "tac-onsides":
        secs = sample_sections(rng, sections, rng.randint(1, 4))
        if rng.random() < 0.7:
            names += mutate_onsides(rng, secs)
        data = json.dumps(secs, allow_nan=True).encode("utf-8")
        if rng.random() < 0.4 or not names:
            data, sub = byte_mutate(rng, data)
            names += sub
        path = tmp / "input.json"
        path.write_bytes(data)
        return path, fmt, names, _onsides_source_counts(data)
    if fmt == "tac-xml":
        paths = xml_of(nlp, sample_sections(rng, sections, rng.randint(1, 3)), tmp)
        for p in paths:
            if rng.random() < 0.7:
                text, sub = mutate_xml_text(rng, p.read_text(encoding="utf-8"))
                p.write_text(text, encoding="utf-8")
                names += sub
            if rng.random() < 0.4 or not names:
                data, sub = byte_mutate(rng, p.read_bytes())
                p.write_bytes(data)
                names += sub
        return tmp / "xml", fmt, names, {"files": len(paths)}
    if fmt == "brat":
        folder = brat_of(nlp, sample_sections(rng, sections, rng.randint(1, 3)), tmp)
        names += mutate_brat(rng, folder)
        return folder, fmt, names, {"documents": len(list(folder.glob("*.txt")))}
    header, rows = euadr_rows(rng, rng.randint(3, 30))
    header, rows, names = mutate_euadr(rng, header, rows)
    data = ("\n".join([header, *rows]) + "\n").encode("utf-8")
    if rng.random() < 0.4:
        data, sub = byte_mutate(rng, data)
        names += sub
    path = tmp / "input.csv"
    path.write_bytes(data)
    return path, fmt, names, None


def _onsides_source_counts(data: bytes) -> Optional[Dict[str, int]]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return {"sections": len(value)} if isinstance(value, list) else None


# ----------------------------------------------------------------- pipe inputs


def pipe_rows(rng: random.Random, sections: List[Dict[str, Any]], k: int) -> List[Dict[str, Any]]:
    rows = []
    for sec in rng.sample(sections, k):
        text = sec["section_text"]
        start = rng.randrange(max(1, len(text) - 3000))
        rows.append({"id": f"{sec['label_id']}/{sec['section_name']}", "text": text[start : start + rng.randint(50, 3000)], "drug": sec["label_id"]})
    return rows


def mutate_rows(rng: random.Random, rows: List[Dict[str, Any]]) -> List[str]:
    names = []
    for _ in range(rng.randint(1, 4)):
        row = rng.choice(rows)
        kind = rng.choice(["text_type", "id_type", "drop_field", "huge_text", "empty_text", "weird_id", "surrogate"])
        names.append(f"row:{kind}")
        if kind == "text_type":
            row["text"] = wrong_value(rng, huge=False)
        elif kind == "id_type":
            row["id"] = wrong_value(rng, huge=False)
        elif kind == "drop_field":
            row.pop(rng.choice(["id", "text"]), None)
        elif kind == "huge_text":
            row["text"] = "Nausea, rash and headache. " * rng.choice([5_000, 45_000])
        elif kind == "empty_text":
            row["text"] = rng.choice(["", " \n\t "])
        elif kind == "weird_id":
            row["id"] = rng.choice(["../../etc/passwd", "a/b", ".hidden", "x" * 400, "é/ü", "con", "a\tb\nc"])
        elif kind == "surrogate":
            row["text"] = "rash \ud83d"  # a lone surrogate: json.dumps escapes it, json.loads brings it back
    return names


def write_pipe_input(rng: random.Random, rows: List[Dict[str, Any]], tmp: Path) -> Tuple[Path, str, List[str], Optional[int]]:
    """(path, format, mutations, records in the input counted independently
    of the readers, or None where the damage makes that count unknowable)."""
    fmt = rng.choice(["jsonl", "jsonl", "jsonl.gz", "csv", "csv", "csv.gz", "tsv", "parquet", "txt"])
    names: List[str] = []
    if fmt.startswith("jsonl"):
        lines = []
        for r in rows:
            line = json.dumps(r, allow_nan=True)
            if rng.random() < 0.05:
                line = rng.choice(["{truncated", "[1, 2]", '"a string"', deep(40_000), '{"id": "big", "text": ' + "1" * 5000 + "}", "null"])
                names.append("line:not_an_object")
            lines.append(line)
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    elif fmt in ("csv", "csv.gz", "tsv"):
        import csv

        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",")
        w.writerow(["id", "text", "drug"])
        for r in rows:
            w.writerow([_cell(r.get("id")), _cell(r.get("text")), _cell(r.get("drug"))])
        data = buf.getvalue().encode("utf-8", "surrogatepass")
    elif fmt == "parquet":
        return _write_parquet(rng, rows, tmp, names)
    else:
        folder = tmp / "notes"
        folder.mkdir()
        for i, r in enumerate(rows):
            text = r.get("text")
            data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else json.dumps(text).encode()
            if rng.random() < 0.2:
                data, sub = byte_mutate(rng, data)
                names += sub
            (folder / f"note{i:03d}.txt").write_bytes(data)
        if rng.random() < 0.1:
            (folder / "dangling.txt").symlink_to(folder / "nowhere")
            names.append("txt:dangling_link")
        return folder, "txt", names, len(list(folder.glob("*.txt")))
    byte_mutated = rng.random() < 0.5
    if byte_mutated:
        data, sub = byte_mutate(rng, data)
        names += sub
    expected = None
    if fmt.startswith("jsonl"):  # the reader's records: non-blank b"\n" lines, a BOM on line 1 ignored
        lines = data.split(b"\n")
        lines[0] = lines[0][3:] if lines[0].startswith(b"\xef\xbb\xbf") else lines[0]
        expected = sum(1 for line in lines if line.strip())
    elif not byte_mutated:  # csv/tsv as written: one record per row
        expected = len(rows)
    suffix = {"jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz", "csv": ".csv", "csv.gz": ".csv.gz", "tsv": ".tsv"}[fmt]
    if fmt.endswith(".gz"):
        data = gzip.compress(data)
        if rng.random() < 0.6:
            damage = rng.choice([truncate, bitflip])
            data = damage(rng, data)
            names.append(f"gz:{damage.__name__}")
            expected = None
    path = tmp / f"notes{suffix}"
    path.write_bytes(data)
    return path, fmt, names, expected


def _cell(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def _write_parquet(rng: random.Random, rows: List[Dict[str, Any]], tmp: Path, names: List[str]) -> Tuple[Path, str, List[str], Optional[int]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    kind = rng.choice(["strings", "numeric_text", "list_id", "binary_text", "nulls"])
    names.append(f"parquet:{kind}")
    ids = [r.get("id") if isinstance(r.get("id"), str) else None for r in rows]
    texts = [r.get("text") if isinstance(r.get("text"), str) else None for r in rows]
    texts = [t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if t else t for t in texts]
    if kind == "numeric_text":
        table = pa.table({"id": ids, "text": pa.array([rng.randrange(10**6) for _ in rows], pa.int64())})
    elif kind == "list_id":
        table = pa.table({"id": [[i] for i in ids], "text": texts})
    elif kind == "binary_text":
        table = pa.table({"id": ids, "text": pa.array([(t or "").encode("latin-1", "replace") for t in texts], pa.binary())})
    elif kind == "nulls":
        table = pa.table({"id": [None if rng.random() < 0.3 else i for i in ids], "text": [None if rng.random() < 0.3 else t for t in texts]})
    else:
        table = pa.table({"id": ids, "text": texts})
    path = tmp / "notes.parquet"
    pq.write_table(table, path, row_group_size=max(1, len(rows) // 3))
    if rng.random() < 0.3:
        damage = rng.choice([truncate, bitflip])
        path.write_bytes(damage(rng, path.read_bytes()))
        names.append(f"parquet:{damage.__name__}")
        return path, "parquet", names, None
    return path, "parquet", names, len(rows)


# ----------------------------------------------------------------- checks


def names_file(message: str, path: Path) -> bool:
    """The message names the input: its file name, or for a folder its path
    or the name of a file in it (a folder's bare name, "xml", is not enough)."""
    if str(path) in message:
        return True
    if path.is_dir():
        return any(child.name in message for child in path.iterdir())
    return path.name in message


def run_convert(path: Path, fmt: str, out: Path, counts: Optional[Dict[str, int]], nlp: Any) -> Tuple[str, str]:
    from spacy_clinie.convert import convert, load_docs
    from spacy_clinie.errors import FormatError

    try:
        result = convert(path, out, fmt, dev_fraction=0.0)
    except (FormatError, ValueError) as err:
        return ("reported" if names_file(str(err), path) else "reported_without_file"), str(err)[:300]
    except Exception as err:  # a raw traceback in the CLI
        return "crash", "".join(traceback.format_exception(err))[-1500:]
    problems = []
    for split, info in result["splits"].items():
        docs = load_docs(info["output"], nlp)
        if len(docs) != info["stats"]["docs"]:
            problems.append(f"{split}: {len(docs)} docs in the file, {info['stats']['docs']} in the report")
        rep = info["report"]["counts"]
        if counts and "sections" in counts and fmt == "tac-onsides":
            if rep.get("sections", 0) + rep.get("skipped_section", 0) != counts["sections"]:
                problems.append(f"sections: {counts['sections']} in, {rep.get('sections', 0)} + {rep.get('skipped_section', 0)} skipped out")
        if counts and "documents" in counts and fmt == "brat":
            if rep.get("documents", 0) + rep.get("skipped_document", 0) != counts["documents"]:
                problems.append(f"documents: {counts['documents']} in, {rep.get('documents', 0)} + {rep.get('skipped_document', 0)} skipped out")
    if problems:
        return "unreconciled", "; ".join(problems)
    return "converted", ""


def count_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def run_pipe_once(model: Any, path: Path, fmt: str, out: Path, settings: Any, nlp: Any, expected: Optional[int]) -> Tuple[str, str, Optional[Any]]:
    from spacy_clinie.batch import run_pipe
    from spacy_clinie.errors import FormatError

    try:
        summary = run_pipe(model, path, out, settings, nlp=nlp)
    except FormatError as err:
        return ("reported" if names_file(str(err), path) else "reported_without_file"), str(err)[:300], None
    except (ValueError, OSError) as err:  # the CLI prints these as "error: ..."
        return ("reported" if names_file(str(err), path) else "reported_without_file"), f"{type(err).__name__}: {err}"[:300], None
    except Exception as err:
        return "crash", "".join(traceback.format_exception(err))[-1500:], None
    if not summary.consistent:
        return "inconsistent", summary.line(), summary
    if expected is not None and summary.read != expected:
        return "inconsistent", f"the input holds {expected} records, the run read {summary.read}: {summary.line()}", summary
    if settings.output_format == "jsonl":
        written = count_lines(out)
        quarantined = count_lines(Path(summary.quarantine))
        if (written, quarantined) != (summary.written, summary.quarantined):
            return "inconsistent", f"files hold {written} + {quarantined} lines, summary says {summary.line()}", summary
    return "completed", "", summary


def cli(args: List[str], timeout: int) -> Tuple[Optional[int], str]:
    """A real ``python -m spacy_clinie`` run; rc None when it ran past ``timeout`` (a hang)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "spacy_clinie", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        return None, f"timed out after {timeout}s\n{err.stdout or ''}{err.stderr or ''}"
    return proc.returncode, proc.stdout + proc.stderr


def check_cli(rc: Optional[int], output: str, path: Path) -> str:
    """cli_ok: exit 0, or exit 1 with an ``error:`` line naming the input."""
    if rc is None:
        return "cli_timeout"
    if "Traceback" in output:
        return "cli_traceback"
    if rc == 1 and not ("error:" in output and names_file(output, path)):
        return "cli_exit_1_unexplained"
    if rc not in (0, 1):
        return f"cli_exit_{rc}"
    return "cli_ok"


# the mutation kinds; an input counts once under each kind it got
CATEGORIES: Dict[str, str] = {
    "truncate": "truncated", "gz:truncate": "truncated", "parquet:truncate": "truncated",
    "bitflip": "bit-flipped", "gz:bitflip": "bit-flipped", "parquet:bitflip": "bit-flipped",
    "garbage": "bit-flipped", "nul_bytes": "bit-flipped",
    "latin1": "wrong encoding", "utf16": "wrong encoding", "bom": "wrong encoding",
    "row:surrogate": "wrong encoding", "parquet:binary_text": "wrong encoding",
    "onsides:field": "wrong types", "onsides:entry": "wrong types", "onsides:entry_field": "wrong types",
    "onsides:not_obj": "wrong types", "onsides:events_str": "wrong types", "row:text_type": "wrong types",
    "row:id_type": "wrong types", "parquet:numeric_text": "wrong types", "parquet:list_id": "wrong types",
    "line:not_an_object": "wrong types", "euadr:cell": "wrong types", "xml:attr": "wrong types",
    "brat:offsets": "wrong types",
    "onsides:huge_text": "huge fields", "xml:huge": "huge fields", "xml:nested": "huge fields",
    "brat:huge_txt": "huge fields", "euadr:huge": "huge fields", "row:huge_text": "huge fields",
}


def categories(names: List[str]) -> List[str]:
    """The issue's kinds of an input's mutations; the rest (lines dropped or
    duplicated, missing keys, duplicate ids, broken XML/brat structure) are
    "structure"."""
    return sorted({CATEGORIES.get(n, "structure") for n in names}) or ["unmutated"]


def pipe_settings(rng: random.Random) -> Dict[str, Any]:
    return {
        "batch_size": rng.choice([1, 2, 8, 32, 64]),
        "n_process": 2 if rng.random() < 0.04 else 1,
        "max_chars": rng.choice([100_000, 100_000, 5_000, 0]),
        "checkpoint_every": rng.choice([1, 7, 1000]),
        "output_format": rng.choice(["jsonl"] * 8 + ["brat", "tac-xml"]),
    }


# ----------------------------------------------------------------- main


def input_rng(seed: int, kind: str, i: int) -> random.Random:
    """Each input has its own generator, so the inputs do not depend on how
    the run is split into shards."""
    return random.Random(f"{seed}-{kind}-{i}")


def add_nested(total: Dict[str, Any], part: Dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            add_nested(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


def run_shard(args: argparse.Namespace, shard: int, shards: int) -> Dict[str, Any]:
    """The inputs i with i % shards == shard: made, run in-process (under a
    hang watchdog) and, every --cli-every-th, as a CLI subprocess."""
    import faulthandler

    import spacy

    from spacy_clinie.batch import PipeSettings
    from spacy_clinie.tokenizer import make_blank

    import spacy_clinie.convert

    # convert() builds the clinical tokenizer afresh on every call (0.8 s of
    # special cases); one shared instance converts the same way, so the
    # in-process runs reuse it
    shared_blank = make_blank()
    spacy_clinie.convert.make_blank = lambda: shared_blank  # type: ignore[assignment]

    sections = load_sections("train") + load_sections("test")
    work = Path(tempfile.mkdtemp(prefix=f"clinie-fuzz-{shard}-"))
    model = build_model(work / "model", sections)
    nlp_pipe = spacy.load(model)
    results: Dict[str, Any] = {
        "convert": Counter(), "pipe": Counter(), "cli": Counter(), "cli_exit_codes": Counter(),
        "pipe_totals": Counter(), "mutations": Counter(), "kind_inputs": Counter(),
    }
    by_kind: Dict[str, Dict[str, Counter]] = {"convert": {}, "pipe": {}}
    formats: Dict[str, Counter] = {"convert": Counter(), "pipe": Counter()}
    failures: List[Dict[str, Any]] = []
    started = time.time()

    def log(msg: str) -> None:
        print(f"[shard {shard}] {msg}", file=sys.stderr, flush=True)

    def keep(kind: str, i: int, path: Path, detail: str, names: List[str]) -> None:
        failures.append({"kind": kind, "input": i, "path": str(path), "mutations": names, "detail": detail})
        log(f"FAILURE {kind} input {i} {names}: {detail[-600:]}")
        if args.keep:
            dest = args.keep / f"{kind}-{i}"
            shutil.rmtree(dest, ignore_errors=True)
            if path.is_dir():
                shutil.copytree(path, dest, symlinks=True)
            else:
                shutil.copy(path, dest)

    def count(stage: str, fmt: str, names: List[str], outcome: str) -> None:
        results[stage][outcome] += 1
        formats[stage][fmt] += 1
        results["mutations"].update(names)
        for cat in categories(names):
            results["kind_inputs"][cat] += 1
            by_kind[stage].setdefault(cat, Counter())[outcome] += 1

    for i in range(shard, args.n_convert, shards):
        rng = input_rng(args.seed, "convert", i)
        tmp = work / f"c{i}"
        tmp.mkdir()
        try:
            path, fmt, names, counts = make_convert_input(rng, shared_blank, sections, tmp)
        except Exception as err:  # a fault of this harness, not of clinie: counted, the shard goes on
            keep("convert-harness_error", i, tmp, "".join(traceback.format_exception(err))[-1500:], [])
            results["convert"]["harness_error"] += 1
            continue
        if args.verbose:
            log(f"convert {i} {fmt} {names}")
        faulthandler.dump_traceback_later(args.hang_after, exit=True)  # a hang ends the shard with a stack dump
        t0 = time.time()
        outcome, detail = run_convert(path, fmt, tmp / "out", counts, shared_blank)
        faulthandler.cancel_dump_traceback_later()
        count("convert", fmt, names, outcome)
        if outcome not in ("converted", "reported"):
            keep(f"convert-{outcome}", i, path, detail, names)
        if args.cli_every and i % args.cli_every == 0:
            rc, output = cli(["convert", str(path), str(tmp / "cli"), "--format", fmt, "--dev-fraction", "0"], args.hang_after)
            verdict = check_cli(rc, output, path)
            results["cli"][f"convert_{verdict}"] += 1
            results["cli_exit_codes"][f"convert rc={rc}"] += 1
            if verdict != "cli_ok":
                keep(f"convert-{verdict}", i, path, output[-1500:], names)
        shutil.rmtree(tmp, ignore_errors=True)
        if args.verbose:
            log(f"convert {i} -> {outcome} ({time.time() - t0:.1f}s) {detail[:200]!r}")
        done = sum(results["convert"].values())
        if done % 50 == 0:
            log(f"convert {done} inputs: {dict(results['convert'])} ({time.time() - started:.0f}s)")

    for i in range(shard, args.n_pipe, shards):
        rng = input_rng(args.seed, "pipe", i)
        tmp = work / f"p{i}"
        tmp.mkdir()
        try:
            rows = pipe_rows(rng, sections, rng.randint(1, 40))
            names = mutate_rows(rng, rows) if rng.random() < 0.8 else []
            path, fmt, sub, expected = write_pipe_input(rng, rows, tmp)
        except Exception as err:  # a fault of this harness
            keep("pipe-harness_error", i, tmp, "".join(traceback.format_exception(err))[-1500:], [])
            results["pipe"]["harness_error"] += 1
            continue
        names += sub
        opts = pipe_settings(rng)
        settings = PipeSettings(progress=rng.random() < 0.05, **opts)
        out = tmp / ("out.jsonl" if opts["output_format"] == "jsonl" else "out")
        use_nlp = nlp_pipe if opts["n_process"] == 1 else None  # n_process 2 loads from disk (forks)
        if args.verbose:
            log(f"pipe {i} {fmt} {names} {opts}")
        faulthandler.dump_traceback_later(args.hang_after, exit=True)
        t0 = time.time()
        outcome, detail, summary = run_pipe_once(model, path, fmt, out, settings, use_nlp, expected)
        faulthandler.cancel_dump_traceback_later()
        count("pipe", fmt, names, outcome)
        if summary is not None:
            results["pipe_totals"].update(
                {"runs_checked": 1, "runs_read_counted_independently": int(expected is not None), "read": summary.read, "written": summary.written, "quarantined": summary.quarantined,
                 "component_errors": summary.extra.get("component_errors", 0)}
            )
        if outcome not in ("completed", "reported"):
            keep(f"pipe-{outcome}", i, path, detail, names)
        if args.cli_every and i % args.cli_every == 0:
            cli_out = tmp / ("cli.jsonl" if opts["output_format"] == "jsonl" else "cli")
            rc, output = cli([
                "pipe", str(model), str(path), str(cli_out), "--no-progress", "--code", str(Path(__file__).resolve()),
                "--batch-size", str(opts["batch_size"]), "--max-chars", str(opts["max_chars"]),
                "--format", opts["output_format"], "--n-process", str(opts["n_process"]),
            ], args.hang_after)
            verdict = check_cli(rc, output, path)
            if verdict == "cli_ok" and rc == 0:
                m = re.search(r"read (\d+) = written (\d+) \+ quarantined (\d+)", output)
                if not m or int(m.group(1)) != int(m.group(2)) + int(m.group(3)):
                    verdict = "cli_inconsistent"
            results["cli"][f"pipe_{verdict}"] += 1
            results["cli_exit_codes"][f"pipe rc={rc}"] += 1
            if verdict != "cli_ok":
                keep(f"pipe-{verdict}", i, path, output[-1500:], names)
        shutil.rmtree(tmp, ignore_errors=True)
        if args.verbose:
            log(f"pipe {i} -> {outcome} ({time.time() - t0:.1f}s) {detail[:200]!r}")
        done = sum(results["pipe"].values())
        if done % 50 == 0:
            log(f"pipe {done} inputs: {dict(results['pipe'])} ({time.time() - started:.0f}s)")

    shutil.rmtree(work, ignore_errors=True)
    report = {k: dict(v) for k, v in results.items()}
    report["by_kind"] = {stage: {cat: dict(c) for cat, c in cats.items()} for stage, cats in by_kind.items()}
    report["formats"] = {stage: dict(c) for stage, c in formats.items()}
    report["failures"] = failures
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-convert", type=int, default=1200)
    parser.add_argument("--n-pipe", type=int, default=1200)
    parser.add_argument("--cli-every", type=int, default=40, help="every Nth input also as a subprocess CLI run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1, help="split the inputs over this many processes (same inputs for any value)")
    parser.add_argument("--shard", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--hang-after", type=int, default=900, help="seconds one input may take before it counts as a hang")
    parser.add_argument("--keep", type=Path, default=None, help="copy failing inputs here")
    parser.add_argument("--json", type=Path, default=None, help="write the counts here")
    parser.add_argument("--verbose", action="store_true", help="one line per input on stderr")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    started = time.time()

    if args.shard is not None:  # a worker started by the run below
        part = run_shard(args, args.shard, args.shards)
        args.json.write_text(json.dumps(part, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    if args.shards == 1:
        parts = [run_shard(args, 0, 1)]
        shard_errors: List[str] = []
    else:
        tmp = Path(tempfile.mkdtemp(prefix="clinie-fuzz-shards-"))
        base = [sys.executable, str(Path(__file__).resolve()), "--n-convert", str(args.n_convert), "--n-pipe", str(args.n_pipe),
                "--cli-every", str(args.cli_every), "--seed", str(args.seed), "--shards", str(args.shards),
                "--hang-after", str(args.hang_after)]
        base += (["--keep", str(args.keep)] if args.keep else []) + (["--verbose"] if args.verbose else [])
        procs = [subprocess.Popen(base + ["--shard", str(k), "--json", str(tmp / f"shard{k}.json")]) for k in range(args.shards)]
        codes = [p.wait() for p in procs]
        parts, shard_errors = [], []
        for k, code in enumerate(codes):
            f = tmp / f"shard{k}.json"
            if code == 0 and f.exists():
                parts.append(json.loads(f.read_text(encoding="utf-8")))
            else:  # a hang (the watchdog's stack dump is on stderr) or a crash of the harness itself
                shard_errors.append(f"shard {k} exited {code} without its counts; see its stderr")
        shutil.rmtree(tmp, ignore_errors=True)

    total: Dict[str, Any] = {}
    failures: List[Dict[str, Any]] = []
    for part in parts:
        failures += part.pop("failures")
        add_nested(total, part)
    report = {
        "inputs": {"convert": args.n_convert, "pipe": args.n_pipe},
        "seed": args.seed,
        "shards": args.shards,
        "seconds": round(time.time() - started, 1),
        **total,
        "shard_errors": shard_errors,
        "failures": failures[:50],
        "n_failures": len(failures) + len(shard_errors),
    }
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    sys.exit(1 if report["n_failures"] else 0)


if __name__ == "__main__":
    main()
