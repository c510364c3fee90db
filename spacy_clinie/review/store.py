"""The feedback store: one SQLite file, one row per decision.

A reviewer's day of work must survive a crash, a closed laptop or a killed
server, so every decision is its own ``BEGIN IMMEDIATE ... COMMIT``
transaction in WAL mode with ``synchronous=FULL``, committed before the app
answers. Rows are never updated: a later decision on the same instance and
task supersedes an earlier one (the ``feedback`` view), and the history stays
for audit. Each row carries the instance's words and whitespace, so export
and ``clinie refine`` need neither the DATA file nor the app.
"""
import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

ACTIONS = ("ok", "gold", "expert", "upload")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance TEXT NOT NULL,
    position INTEGER NOT NULL,  -- the instance's index in review order
    task TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('ok', 'gold', 'expert', 'upload')),
    labels TEXT NOT NULL,
    predicted TEXT NOT NULL,
    gold TEXT NOT NULL,
    words TEXT NOT NULL,
    spaces TEXT NOT NULL,
    doc_id TEXT,
    reviewer TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_key ON decisions (instance, task, id);
CREATE VIEW IF NOT EXISTS feedback AS
    SELECT d.* FROM decisions d
    WHERE d.id = (SELECT MAX(id) FROM decisions e WHERE e.instance = d.instance AND e.task = d.task);
"""


def fingerprint(data_path: Union[str, Path], max_tokens: int) -> str:
    """What instance keys depend on: the DATA bytes and the window size."""
    h = hashlib.sha256()
    with open(data_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(f"max_tokens={max_tokens}".encode())
    return h.hexdigest()


class FeedbackStore:
    """Decisions per (instance, task) in ``path``. Opens a connection per
    call, so Flask's worker threads never share one."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        try:
            yield conn
        finally:
            conn.close()

    # ------------------------------------------------------------ meta

    def get_meta(self) -> Dict[str, Any]:
        with self._connect() as conn:
            return {r["key"]: json.loads(r["value"]) for r in conn.execute("SELECT key, value FROM meta")}

    def bind(self, meta: Dict[str, Any], *, check: Sequence[str] = ("fingerprint", "tag_names")) -> None:
        """Record what this store was made for; refuse a store made for other
        data or another tag set (its instance keys or labels would not match)."""
        old = self.get_meta()
        for key in check:
            if key in old and key in meta and old[key] != meta[key]:
                raise ValueError(
                    f"{self.path}: this feedback store was made for a different {key} "
                    f"(other DATA, window size or model labels); use another --store"
                )
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            for key, value in meta.items():
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            conn.execute("COMMIT")

    # ------------------------------------------------------------ decisions

    def record(
        self,
        *,
        instance: str,
        position: int,
        task: str,
        action: str,
        labels: Sequence[str],
        predicted: Sequence[str],
        gold: Sequence[str],
        words: Sequence[str],
        spaces: Sequence[bool],
        doc_id: Optional[str] = None,
        reviewer: Optional[str] = None,
    ) -> int:
        """Append one decision and commit it before returning its row id."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        n = len(words)
        for name, seq in (("labels", labels), ("predicted", predicted), ("gold", gold), ("spaces", spaces)):
            if len(seq) != n:
                raise ValueError(f"{name}: {len(seq)} values for {n} tokens")
        row = (
            instance, position, task, action,
            json.dumps(list(labels)), json.dumps(list(predicted)), json.dumps(list(gold)),
            json.dumps(list(words)), json.dumps([bool(s) for s in spaces]),
            doc_id, reviewer, time.time(),
        )
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO decisions (instance, position, task, action, labels, predicted, gold, words, spaces, doc_id, reviewer, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            conn.execute("COMMIT")
            return int(cur.lastrowid)

    def feedback(self, task: Optional[str] = None) -> List[Dict[str, Any]]:
        """The current decision per (instance, task), in review order."""
        sql = "SELECT * FROM feedback" + (" WHERE task = ?" if task else "") + " ORDER BY position, id"
        with self._connect() as conn:
            return [_row(r) for r in conn.execute(sql, (task,) if task else ())]

    def history(self) -> List[Dict[str, Any]]:
        with self._connect() as conn:
            return [_row(r) for r in conn.execute("SELECT * FROM decisions ORDER BY id")]

    def decided(self) -> Dict[str, Dict[str, str]]:
        """``{instance: {task: action}}`` for the current decisions."""
        out: Dict[str, Dict[str, str]] = {}
        with self._connect() as conn:
            for r in conn.execute("SELECT instance, task, action FROM feedback"):
                out.setdefault(r["instance"], {})[r["task"]] = r["action"]
        return out

    def latest(self, instance: str, task: str) -> Optional[Dict[str, Any]]:
        with self._connect() as conn:
            r = conn.execute(
                "SELECT * FROM decisions WHERE instance = ? AND task = ? ORDER BY id DESC LIMIT 1", (instance, task)
            ).fetchone()
        return _row(r) if r else None


def _row(r: sqlite3.Row) -> Dict[str, Any]:
    out = dict(r)
    for key in ("labels", "predicted", "gold", "words", "spaces"):
        out[key] = json.loads(out[key])
    return out
