"""Exactly-once output for runs that may be killed at any moment.

Outputs are append-only files. Every ``checkpoint_every`` records the run
flushes and fsyncs them and then atomically replaces a small state file
(write a temporary file, fsync, ``os.replace``) holding

- ``offset``: every input record before it is in the output or the
  quarantine, and nothing from a later record is counted;
- ``output_bytes`` / ``quarantine_bytes``: the file sizes at that point;
- the running counts and a fingerprint of the run's settings.

A restart truncates both files to the committed sizes (dropping a half
written line and anything written after the last commit) and reads the input
again from ``offset``. Because the input is read in a fixed order, each
record then lands in the output exactly once, whatever the moment of the
kill. Folder outputs (brat, TAC XML) write one file per document under a name
derived from its id, atomically, so a record processed again after a restart
replaces its own file. Outputs made of several files (the table, FHIR) keep
one committed position per file in ``outputs``.

A record the pipeline processed but that cannot make valid output (a note
without a patient id for FHIR, say), or one a pipeline component raised on
(``extra["component_errors"]`` counts those), is *rejected*: it goes, in input order,
to a pending file committed like the output (``rejected_bytes``). The
quarantine file cannot take it there and then, because the reader has
already quarantined bad records further ahead; when the run completes the
pending entries are appended to the quarantine file, so a finished run has
one quarantine file with every reason. ``quarantined`` counts both kinds,
``rejected`` the second.
"""

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

STATE_VERSION = 1


@dataclass
class RunState:
    fingerprint: Dict[str, Any]
    offset: int = 0
    output_bytes: int = 0
    quarantine_bytes: int = 0
    written: int = 0
    quarantined: int = 0
    complete: bool = False
    seconds: float = 0.0
    restarts: int = 0
    outputs: Dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejected_bytes: int = 0
    version: int = STATE_VERSION
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def read(self) -> int:
        return self.offset


def fsync_dir(path: Path) -> None:
    """Make a rename durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_state(path: Path, state: RunState) -> None:
    atomic_write_bytes(path, json.dumps(asdict(state), indent=1, sort_keys=True).encode("utf-8"))


def load_state(path: Path) -> Optional[RunState]:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunState(**data)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{path}: unreadable run state ({err}); delete it and the outputs, or pass --overwrite"
        ) from err


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (the last commit). A file shorter
    than its committed size means it was changed behind our back."""
    actual = path.stat().st_size if path.exists() else 0
    if actual < size:
        raise ValueError(
            f"{path}: {actual} bytes, but {size} were committed; the file was changed outside this run. "
            "Pass --overwrite to start again."
        )
    if actual > size:
        with open(path, "r+b") as f:
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())


def fingerprint_mismatch(old: Dict[str, Any], new: Dict[str, Any]) -> Optional[str]:
    """The first setting that differs between the saved run and this one."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key}: {old.get(key)!r} before, {new.get(key)!r} now"
    return None
