import json
from pathlib import Path
from typing import Dict, List

import pytest
import spacy

from . import toy_components  # noqa: F401  (registers clinie_test_annotate)

CODE = Path(toy_components.__file__)
TERMS = ("nausea", "rash", "headache")


def build_light_pipeline(path: Path, sleep: float = 0.0) -> Path:
    """Blank English + span_ruler into doc.spans["mentions"] + the toy
    annotator, saved to disk: the shape of the real pipeline in milliseconds."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": "mentions"})
    ruler.add_patterns([{"label": "AdverseReaction", "pattern": [{"LOWER": t}]} for t in TERMS])
    nlp.add_pipe("clinie_test_annotate", config={"sleep": sleep})
    nlp.meta["name"] = "light"
    nlp.meta["version"] = "1.2.3"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="session")
def light_model(tmp_path_factory) -> Path:
    return build_light_pipeline(tmp_path_factory.mktemp("light") / "model")


def note(i: int) -> str:
    return f"Patient {i} reported {'no ' if i % 3 == 0 else ''}nausea and a {TERMS[i % 3]} on day {i % 11}."


def good_records(n: int) -> List[Dict[str, str]]:
    return [{"id": f"note-{i}", "text": note(i)} for i in range(n)]


def write_jsonl(path: Path, rows: List[bytes]) -> Path:
    path.write_bytes(b"".join(r if r.endswith(b"\n") else r + b"\n" for r in rows))
    return path


def json_line(obj) -> bytes:
    return json.dumps(obj).encode("utf-8")


def read_jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
