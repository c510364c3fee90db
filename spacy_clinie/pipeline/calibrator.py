"""``clinie_confidence_calibrator``: confidences that mean what they say.

The tagger's mention confidence (mean max tag probability) ranks mentions
well but is not a probability: on TAC dev a mention scored 0.9 is right far
less often than 90% of the time. This component maps each raw score through
an isotonic (monotone, piecewise-linear) function fitted on held-out
predictions (``clinie calibrate``, on dev), so that ``confidence`` is the
estimated probability that the mention is exactly right. Reactions (unique
strings per document, the unit users consume) get their own map, fitted on
the highest raw score of the mentions that spell them.

Written to each span of ``doc.spans[spans_key]``:
``attributes["confidence"]`` (calibrated), ``attributes["confidence_raw"]``
(the producer's score, kept so running the component twice changes nothing)
and ``attributes["reaction_confidence"]``. A calibrator with no fitted map
leaves confidences as they are.
"""
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc

from ..errors import Errors
from ..extensions import MENTIONS_KEY, get_mentions, register_extensions
from ..scoring import normalize_string, span_text
from ..scoring.calibration import (
    CONFIDENCE,
    RAW_CONFIDENCE,
    REACTION_CONFIDENCE,
    expected_calibration_error,
    mention_outcomes,
    raw_confidence,
    reaction_outcomes,
    reaction_scores,
)

LEVELS = ("mention", "reaction")


@dataclass
class IsotonicMap:
    """A monotone map from raw score to probability, stored as the knots of
    a piecewise-linear function (``numpy.interp`` between them, clipped at
    the ends), so applying it needs no scikit-learn."""

    x: List[float] = field(default_factory=list)
    y: List[float] = field(default_factory=list)
    n: int = 0

    def __call__(self, scores: Union[float, Sequence[float]]) -> numpy.ndarray:
        raw = numpy.asarray(scores, dtype="float64")
        if not self.x:
            return raw
        return numpy.interp(raw, self.x, self.y)

    @classmethod
    def fit(cls, scores: Sequence[float], outcomes: Sequence[float]) -> "IsotonicMap":
        from sklearn.isotonic import IsotonicRegression

        scores = numpy.asarray(scores, dtype="float64")
        outcomes = numpy.asarray(outcomes, dtype="float64")
        if len(scores) == 0:
            raise ValueError(Errors.E101)
        reg = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        reg.fit(scores, outcomes)
        return cls(x=[float(v) for v in reg.X_thresholds_], y=[float(v) for v in reg.y_thresholds_], n=len(scores))

    def to_dict(self) -> Dict[str, Any]:
        return {"x": self.x, "y": self.y, "n": self.n}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "IsotonicMap":
        return cls(x=[float(v) for v in data.get("x", [])], y=[float(v) for v in data.get("y", [])], n=int(data.get("n", 0)))


def fit_calibration(gold: Sequence[Doc], pred: Sequence[Doc], spans_key: str = MENTIONS_KEY) -> Dict[str, Any]:
    """Mention and reaction maps fitted on ``pred`` against ``gold`` (a dev
    split, never the test split), with the ECE before and after on the same
    docs for the record."""
    out: Dict[str, Any] = {"maps": {}, "fit": {}}
    for level, outcomes in (("mention", mention_outcomes), ("reaction", reaction_outcomes)):
        scores, hits = outcomes(gold, pred, spans_key)
        if len(scores) == 0:  # nothing predicted on dev: leave this level raw
            warnings.warn(f"no predicted {level}s to calibrate on: {level} confidences stay raw")
            out["maps"][level] = IsotonicMap().to_dict()
            out["fit"][level] = {"n": 0, "accuracy": 0.0, "ece_before": 0.0, "ece_after": 0.0}
            continue
        fitted = IsotonicMap.fit(scores, hits)
        out["maps"][level] = fitted.to_dict()
        out["fit"][level] = {
            "n": int(len(scores)),
            "accuracy": float(hits.mean()) if len(hits) else 0.0,
            "ece_before": expected_calibration_error(scores, hits),
            "ece_after": expected_calibration_error(fitted(scores), hits),
        }
    return out


@Language.factory(
    "clinie_confidence_calibrator",
    requires=["doc.spans"],
    assigns=["span._.attributes"],
    default_config={"spans_key": MENTIONS_KEY, "labels": None},
)
def make_confidence_calibrator(
    nlp: Language, name: str, spans_key: str, labels: Optional[List[str]]
) -> "ConfidenceCalibrator":
    return ConfidenceCalibrator(nlp.vocab, name=name, spans_key=spans_key, labels=labels)


class ConfidenceCalibrator(Pipe):
    """Applies fitted isotonic maps to mention and reaction confidences."""

    def __init__(self, vocab: Any, name: str = "confidence_calibrator", *, spans_key: str = MENTIONS_KEY, labels: Optional[List[str]] = None) -> None:
        register_extensions()
        self.vocab = vocab
        self.name = name
        self.cfg: Dict[str, Any] = {"spans_key": spans_key, "labels": labels}
        self.maps: Dict[str, IsotonicMap] = {}
        self.fit_report: Dict[str, Any] = {}

    @property
    def is_fitted(self) -> bool:
        return bool(self.maps)

    def initialize(
        self,
        get_examples: Optional[Callable[[], Iterable[Any]]] = None,
        *,
        nlp: Optional[Language] = None,
        calibration: Optional[Union[str, Path, Dict[str, Any]]] = None,
    ) -> None:
        """Load maps written by ``clinie calibrate --output FILE`` (or a dict
        as :func:`fit_calibration` returns). Without one the component stays
        a pass-through: fitting needs predictions of the trained upstream
        components on held-out data, which spaCy's initialize cannot give."""
        if calibration is None:
            return
        data = calibration if isinstance(calibration, dict) else srsly.read_json(calibration)
        self.set_calibration(data)

    def set_calibration(self, data: Dict[str, Any]) -> None:
        maps = data.get("maps", data)
        unknown = set(maps) - set(LEVELS)
        if unknown:
            raise ValueError(Errors.E102.format(name=self.name, unknown=sorted(unknown), levels=LEVELS))
        self.maps = {level: IsotonicMap.from_dict(maps[level]) for level in LEVELS if level in maps}
        self.fit_report = data.get("fit", {})

    def fit(self, gold: Sequence[Doc], pred: Sequence[Doc]) -> Dict[str, Any]:
        """Fit on ``pred`` (this pipeline's upstream output on held-out docs
        whose gold is ``gold``); returns the fit report."""
        data = fit_calibration(gold, pred, self.cfg["spans_key"])
        self.set_calibration(data)
        return data

    def __call__(self, doc: Doc) -> Doc:
        if not self.maps:
            return doc
        labels = self.cfg["labels"]
        spans = [s for s in get_mentions(doc, self.cfg["spans_key"]) if labels is None or s.label_ in labels]
        if not spans:
            return doc
        reactions = reaction_scores(doc, self.cfg["spans_key"])
        mention_map = self.maps.get("mention")
        reaction_map = self.maps.get("reaction")
        for span in spans:
            attrs = dict(span._.attributes or {})
            raw = raw_confidence(attrs)
            attrs[RAW_CONFIDENCE] = round(raw, 4)
            if mention_map is not None:
                attrs[CONFIDENCE] = round(float(mention_map(raw)), 4)
            if reaction_map is not None:
                key = (span.label_, normalize_string(span_text(span)))
                attrs[REACTION_CONFIDENCE] = round(float(reaction_map(reactions[key])), 4)
            if span.id_:
                span._.attributes = attrs
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterable[Doc]:
        for doc in stream:
            yield self(doc)

    # ------------------------------------------------------------ serialisation

    def _data(self) -> Dict[str, Any]:
        return {"maps": {k: m.to_dict() for k, m in self.maps.items()}, "fit": self.fit_report}

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.msgpack_dumps({"cfg": self.cfg, "calibration": self._data()})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "ConfidenceCalibrator":
        data = srsly.msgpack_loads(bytes_data)
        self.cfg.update(data.get("cfg", {}))
        self.set_calibration(data.get("calibration", {}))
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        path = util.ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", self.cfg)
        srsly.write_json(path / "calibration.json", self._data())

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "ConfidenceCalibrator":
        path = util.ensure_path(path)
        if (path / "cfg").exists():
            self.cfg.update(srsly.read_json(path / "cfg"))
        if (path / "calibration.json").exists():
            self.set_calibration(srsly.read_json(path / "calibration.json"))
        return self


def describe(data: Dict[str, Any]) -> str:
    """One line per level of a fit report, for the CLI."""
    lines = []
    for level, rep in data.get("fit", {}).items():
        lines.append(
            f"{level}: n={rep['n']} accuracy={rep['accuracy']:.3f} "
            f"ECE {rep['ece_before']:.3f} -> {rep['ece_after']:.3f} (on the fitting data)"
        )
    return "\n".join(lines) or json.dumps(data)
