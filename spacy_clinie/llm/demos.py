"""The demonstration pool of seed 001: high-confidence examples, one per
class retrieved by embedding similarity to the text being corrected."""
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy.tokens import Doc

from .confidence import unit_entropy, units

Demo = Dict[str, Any]  # {"text": str, "entities": [[text, label], ...], "entropy": float}


class DemoPool:
    """Examples ``{"text", "entities", "entropy"}``; ``encoder`` maps texts to
    unit-length vectors (``clinie.SentenceEncoder.v1``). Without an encoder,
    retrieval takes the most confident example of each class."""

    def __init__(self, examples: Optional[Iterable[Demo]] = None, encoder: Optional[Callable[[Sequence[str]], numpy.ndarray]] = None) -> None:
        self.encoder = encoder
        self.examples: List[Demo] = []
        self._vectors: Optional[numpy.ndarray] = None
        self.add(examples or [])

    def __len__(self) -> int:
        return len(self.examples)

    def add(self, examples: Iterable[Demo]) -> None:
        for ex in examples:
            if not isinstance(ex, dict) or not isinstance(ex.get("text"), str):
                raise ValueError(f"a demonstration needs a 'text' string, got {ex!r}")
            ents = [[str(t), str(lab)] for t, lab in ex.get("entities", [])]
            self.examples.append({"text": ex["text"], "entities": ents, "entropy": float(ex.get("entropy", 0.0))})
        self._vectors = None

    def replace(self, examples: Iterable[Demo]) -> None:
        self.examples = []
        self.add(examples)

    @property
    def vectors(self) -> Optional[numpy.ndarray]:
        if self._vectors is None and self.encoder is not None and self.examples:
            self._vectors = self.encoder([ex["text"] for ex in self.examples])
        return self._vectors

    def retrieve(self, text: str, labels: Sequence[str]) -> List[Demo]:
        """One example per label that has any: the most similar to ``text``."""
        vecs = self.vectors
        sims = None
        if vecs is not None and len(vecs):
            sims = vecs @ self.encoder([text])[0]
        out: List[Demo] = []
        for label in labels:
            idx = [i for i, ex in enumerate(self.examples) if any(lab == label for _, lab in ex["entities"]) and ex["text"] != text]
            if not idx:
                continue
            best = max(idx, key=lambda i: sims[i]) if sims is not None else min(idx, key=lambda i: self.examples[i]["entropy"])
            out.append(self.examples[best])
        return out

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_jsonl(path / "examples.jsonl", self.examples)
        vecs = self.vectors
        if vecs is not None:
            numpy.save(path / "vectors.npy", vecs)

    def from_disk(self, path: Union[str, Path]) -> "DemoPool":
        path = Path(path)
        self.examples, self._vectors = [], None
        if (path / "examples.jsonl").exists():
            self.add(srsly.read_jsonl(path / "examples.jsonl"))
        if (path / "vectors.npy").exists() and self.examples:
            vecs = numpy.load(path / "vectors.npy")
            self._vectors = vecs if len(vecs) == len(self.examples) else None
        return self


def load_demos(path: Union[str, Path]) -> List[Demo]:
    """Demonstrations from a JSONL file, checked line by line."""
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            ex = srsly.json_loads(line)
        except ValueError as e:
            raise ValueError(f"{path}, line {n}: not JSON ({e})") from None
        if not isinstance(ex, dict) or not isinstance(ex.get("text"), str) or not isinstance(ex.get("entities", []), list):
            raise ValueError(f"{path}, line {n}: expected {{\"text\": str, \"entities\": [[text, label], ...]}}")
        out.append(ex)
    return out


def unit_examples(doc: Doc, spans_key: str, max_tokens: int) -> List[Tuple[Demo, Tuple[int, int]]]:
    """Each sentence unit of ``doc`` as a demonstration of the spans it holds
    (the small model's pseudo-labels, or gold), with its mean entropy."""
    spans = list(doc.spans[spans_key]) if spans_key in doc.spans else []
    out = []
    for start, end in units(doc, max_tokens):
        ents = [[s.text, s.label_] for s in sorted(spans, key=lambda s: s.start) if s.start >= start and s.end <= end]
        h = unit_entropy(doc, start, end)
        out.append(({"text": doc[start:end].text.strip(), "entities": ents, "entropy": 0.0 if h == float("inf") else float(h)}, (start, end)))
    return out


def lowest_entropy(examples: Sequence[Demo], labels: Sequence[str], ratio: float) -> List[Demo]:
    """Seed 001 eq. 1: per class, the ``ratio`` share of examples with that
    class that have the lowest entropy (at least one per class)."""
    chosen: Dict[int, Demo] = {}
    for label in labels:
        idx = [i for i, ex in enumerate(examples) if any(lab == label for _, lab in ex["entities"])]
        idx.sort(key=lambda i: examples[i]["entropy"])
        for i in idx[: max(1, int(round(len(idx) * ratio)))]:
            chosen[i] = examples[i]
    return [chosen[i] for i in sorted(chosen)]
