"""Where processed documents go: one JSONL file, or a folder of brat / TAC
XML files, of table files (``table.py``) or of FHIR resources (``fhir.py``).
Each sink can report a committed position and be reopened at it (see
``checkpoint.py``)."""

import hashlib
import io
import json
import os
from pathlib import Path
from typing import IO, Any, Dict, Optional, Union

from spacy.tokens import Doc

from ..readers import doc_to_brat
from ..readers.tac_xml import docs_to_tac_xml
from .checkpoint import atomic_write_bytes, truncate



def dumps_line(record: Dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class JsonlFile:
    """An append-only JSONL file reopened at a committed size."""

    def __init__(self, path: Path, committed_bytes: int = 0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if committed_bytes or path.exists():
            truncate(path, committed_bytes)
        self._f: IO[bytes] = open(path, "ab")

    def write(self, record: Dict[str, Any]) -> None:
        self._f.write(dumps_line(record))

    def position(self) -> int:
        """Bytes written so far, buffered ones included."""
        return self._f.tell()

    def sync(self) -> int:
        self._f.flush()
        os.fsync(self._f.fileno())
        return self._f.tell()

    def close(self) -> None:
        if not self._f.closed:
            self.sync()
            self._f.close()


def safe_name(doc_id: str) -> str:
    """A file name for an id. Ids changed by the clean-up get a short hash,
    so ``a/b`` and ``a_b`` do not overwrite each other."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id).lstrip(".") or "_"
    if safe != doc_id or len(safe) > 120:
        safe = f"{safe[:120]}-{hashlib.sha1(doc_id.encode('utf-8')).hexdigest()[:8]}"
    return safe


class Sink:
    """What the committer needs of an output. ``write`` returns ``None``, or
    the reason the record cannot make valid output (nothing of it is
    written then, and the record is quarantined); ``sync`` makes what was
    written durable and returns its position: a size, or a size per file."""

    may_reject = False

    def write(self, doc_id: str, doc: Optional[Doc], record: Dict[str, Any]) -> Optional[str]:
        raise NotImplementedError

    def sync(self) -> Union[int, Dict[str, int]]:
        return 0

    def finish(self) -> None:
        """Called once, after the last record and before the final commit."""

    def close(self) -> None:
        pass


class JsonlSink(Sink):
    """``--format jsonl``: one record per line."""

    def __init__(self, path: Path, committed_bytes: int = 0) -> None:
        self.file = JsonlFile(path, committed_bytes)

    def write(self, doc_id: str, doc: Optional[Doc], record: Dict[str, Any]) -> None:
        self.file.write(record)

    def sync(self) -> int:
        return self.file.sync()

    def close(self) -> None:
        self.file.close()


class FolderSink(Sink):
    """``--format brat`` (``<id>.txt`` + ``<id>.ann``) or ``tac-xml``
    (``<id>.xml``, one ``<Label>`` per document). Files are replaced
    atomically, so reprocessing a document after a restart is harmless."""

    def __init__(self, path: Path, fmt: str, spans_key: str) -> None:
        if fmt not in ("brat", "tac-xml"):
            raise ValueError(f"unknown folder format {fmt!r}")
        self.path = path
        self.fmt = fmt
        self.spans_key = spans_key
        path.mkdir(parents=True, exist_ok=True)

    def write(self, doc_id: str, doc: Optional[Doc], record: Dict[str, Any]) -> None:
        if doc is None:
            raise ValueError(f"{self.fmt} output needs the Doc of {doc_id!r}")
        name = safe_name(doc_id)
        doc._.doc_id = doc_id
        if self.fmt == "brat":
            atomic_write_bytes(self.path / f"{name}.txt", doc.text.encode("utf-8"))
            atomic_write_bytes(
                self.path / f"{name}.ann", doc_to_brat(doc, spans_key=self.spans_key).encode("utf-8")
            )
        else:
            buf = io.BytesIO()
            docs_to_tac_xml([doc], label_id=doc_id, spans_key=self.spans_key).write(
                buf, encoding="utf-8", xml_declaration=True
            )
            atomic_write_bytes(self.path / f"{name}.xml", buf.getvalue())

    def sync(self) -> int:
        return 0

    def close(self) -> None:
        pass
