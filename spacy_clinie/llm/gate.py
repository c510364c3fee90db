"""The do-no-harm gate on LLM corrector edits (issue 20).

A small logistic regression, fitted on edits the ungated corrector made on
dev (each labelled right or wrong against dev gold), estimates P(edit is
right) from what is known when the edit is proposed: the edit type, the
tagger's calibrated confidence in the span it touches, the LLM's
probability for the string it named, the unit's tag entropy, and whether
the train-string dictionary or the MedDRA linker knows the string (and the
link score). An edit applies only when P(right) > ``threshold``. An
unfitted gate rejects nothing (it is the ungated corrector) and says so
with a warning, once per gate, when it is switched on.

The threshold itself is chosen on dev (``choose_threshold``) from
out-of-fold probabilities: the candidate that applies the most more right
than wrong edits, or 1.0 (apply nothing) when no candidate gains. A small
LLM whose edits do not pay on dev is thereby switched off, not trusted.
"""
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy
import srsly

from .edits import EDIT_KINDS, Edit, SpanKey

FEATURES = (
    "drop", "relabel", "reboundary",  # edit type; add is the baseline
    "tagger_confidence", "llm_probability", "unit_entropy", "in_dictionary", "link_score",
)
GATE_MODES = ("on", "off")
UNFITTED_WARNING = (
    "the LLM edit gate is on but not fitted, so every LLM edit applies (the ungated corrector; with SmolLM2-135M "
    "it lowered TAC test strict F1 by 0.024, benchmarks/RESULTS.md). Fit one on held-out gold with `clinie fit-gate` "
    "and set the task's gate_path, or set gate_mode = \"off\" to run ungated knowingly."
)
LinkScorer = Callable[[List[str]], List[float]]


def edit_outcome(edit: Edit, gold: Set[SpanKey]) -> bool:
    """Right when the edit moves the unit towards gold: an add, relabel or
    re-boundary whose new span is a gold span (and, for the latter two,
    whose old span was not); a drop of a span that is not gold."""
    if edit.kind == "drop":
        return edit.old not in gold
    return edit.new in gold and (edit.old is None or edit.old not in gold)


THRESHOLD_CANDIDATES = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50 .. 0.95
REJECT_ALL = 1.0  # P(right) > 1.0 never holds


def choose_threshold(
    probabilities: Sequence[float],
    outcomes: Sequence[bool],
    candidates: Sequence[float] = THRESHOLD_CANDIDATES,
) -> Tuple[float, List[Dict[str, Any]]]:
    """The acceptance threshold with the largest net gain (right minus wrong
    edits accepted) over ``probabilities`` that no gate being judged was
    fitted on (out-of-fold dev estimates); the lowest such candidate on a tie.
    ``REJECT_ALL`` when no candidate accepts more right than wrong edits.
    Returns the threshold and the table it was chosen from."""
    if len(probabilities) != len(outcomes):
        raise ValueError(f"{len(probabilities)} probabilities for {len(outcomes)} outcomes")
    if not candidates or any(not 0.0 <= t <= 1.0 for t in candidates):
        raise ValueError(f"threshold candidates must be in [0, 1], got {list(candidates)}")
    table = []
    for t in sorted(candidates):
        accepted = [bool(o) for p, o in zip(probabilities, outcomes) if p > t]
        right = sum(accepted)
        table.append({"threshold": t, "accepted": len(accepted), "right": right, "net_gain": right - (len(accepted) - right)})
    best = max(table, key=lambda row: (row["net_gain"], -row["threshold"]))
    return (best["threshold"] if best["net_gain"] > 0 else REJECT_ALL), table


class EditGate:
    """Logistic acceptance model over ``FEATURES``; ``mode="off"`` applies
    every edit (the ungated corrector), as does an unfitted gate."""

    def __init__(
        self,
        *,
        mode: str = "on",
        threshold: float = 0.5,
        dictionary: Optional[Iterable[str]] = None,
        link_scorer: Optional[LinkScorer] = None,
    ) -> None:
        if mode not in GATE_MODES:
            raise ValueError(f"gate mode must be one of {GATE_MODES}, got {mode!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"gate threshold must be in [0, 1], got {threshold}")
        self.mode = mode
        self.threshold = threshold
        self.dictionary: Set[str] = {s.lower() for s in dictionary or ()}
        self.link_scorer = link_scorer
        self.coef: Optional[numpy.ndarray] = None
        self.intercept = 0.0
        self.fit_report: Dict[str, Any] = {}
        self.warned_unfitted = False

    @property
    def is_fitted(self) -> bool:
        return self.coef is not None

    @property
    def active(self) -> bool:
        return self.mode == "on" and self.is_fitted

    # ------------------------------------------------------------ features

    def featurize(
        self,
        edits: Sequence[Edit],
        texts: Dict[SpanKey, str],
        tagger_conf: Dict[SpanKey, Optional[float]],
        llm_prob: Dict[SpanKey, Optional[float]],
        unit_entropy: float,
    ) -> None:
        """Fill each edit's ``features``. The string judged is the new span's
        (an add's, a relabel's, a re-boundary's) or the dropped span's."""
        strings = [texts[e.new if e.new is not None else e.old] for e in edits]  # type: ignore[index]
        links = self.link_scorer(strings) if self.link_scorer and strings else [0.0] * len(strings)
        for e, text, link in zip(edits, strings, links):
            conf = tagger_conf.get(e.old) if e.old is not None else None
            prob = llm_prob.get(e.new) if e.new is not None else None
            e.features = {
                "drop": float(e.kind == "drop"),
                "relabel": float(e.kind == "relabel"),
                "reboundary": float(e.kind == "reboundary"),
                "tagger_confidence": float(conf) if conf is not None else 0.0,
                "llm_probability": float(prob) if prob is not None else 0.0,
                "unit_entropy": float(min(unit_entropy, 5.0)),
                "in_dictionary": float(text.lower().strip() in self.dictionary),
                "link_score": float(link or 0.0),
            }

    @staticmethod
    def matrix(edits: Sequence[Edit]) -> numpy.ndarray:
        return numpy.asarray([[e.features[f] for f in FEATURES] for e in edits], dtype="float64").reshape(len(edits), len(FEATURES))

    def probabilities(self, edits: Sequence[Edit]) -> numpy.ndarray:
        if not self.is_fitted:
            return numpy.ones(len(edits))
        z = self.matrix(edits) @ self.coef + self.intercept
        return 1.0 / (1.0 + numpy.exp(-z))

    def accept(self, edits: Sequence[Edit]) -> List[bool]:
        """Which edits apply: all when off or unfitted, else P(right) > threshold."""
        if not self.active:
            if self.mode == "on" and edits and not self.warned_unfitted:
                self.warned_unfitted = True
                warnings.warn(UNFITTED_WARNING, UserWarning, stacklevel=2)
            return [True] * len(edits)
        return [bool(p > self.threshold) for p in self.probabilities(edits)]

    # ------------------------------------------------------------ fitting

    def fit(self, edits: Sequence[Edit], outcomes: Sequence[bool], *, c: float = 1.0) -> Dict[str, Any]:
        """L2-regularised logistic regression (scikit-learn, inverse strength
        ``c``) on featurized edits and their right/wrong outcomes. With one
        outcome class only, the model is the intercept (its log-odds,
        smoothed), i.e. it accepts all or nothing."""
        from sklearn.linear_model import LogisticRegression

        y = numpy.asarray(outcomes, dtype=int)
        if not len(edits):
            raise ValueError("no edits to fit the gate on")
        if len(set(y.tolist())) < 2:
            rate = (y.sum() + 1.0) / (len(y) + 2.0)
            self.coef, self.intercept = numpy.zeros(len(FEATURES)), float(numpy.log(rate / (1 - rate)))
        else:
            model = LogisticRegression(C=c, max_iter=1000).fit(self.matrix(edits), y)
            self.coef, self.intercept = model.coef_[0].astype("float64"), float(model.intercept_[0])
        accepted = self.probabilities(edits) > self.threshold
        self.fit_report = {
            "n_edits": int(len(y)),
            "n_right": int(y.sum()),
            "c": c,
            "per_kind": {
                k: {
                    "edits": int(sum(e.kind == k for e in edits)),
                    "right": int(sum(bool(o) for e, o in zip(edits, y) if e.kind == k)),
                    "accepted": int(sum(bool(a) for e, a in zip(edits, accepted) if e.kind == k)),
                }
                for k in EDIT_KINDS
            },
        }
        return self.fit_report

    # ------------------------------------------------------------ io

    def to_dict(self) -> Dict[str, Any]:
        return {
            "features": list(FEATURES),
            "coef": None if self.coef is None else [float(v) for v in self.coef],
            "intercept": self.intercept,
            "threshold": self.threshold,
            "dictionary": sorted(self.dictionary),
            "fit": self.fit_report,
        }

    def from_dict(self, data: Dict[str, Any], *, where: str = "gate") -> "EditGate":
        if data.get("coef") is not None and list(data.get("features", [])) != list(FEATURES):
            raise ValueError(f"{where}: gate features {data.get('features')} do not match this version's {list(FEATURES)}")
        self.coef = None if data.get("coef") is None else numpy.asarray(data["coef"], dtype="float64")
        self.intercept = float(data.get("intercept", 0.0))
        self.threshold = float(data.get("threshold", self.threshold))
        self.dictionary = set(data.get("dictionary", []))
        self.fit_report = dict(data.get("fit", {}))
        return self

    def to_disk(self, path: Union[str, Path]) -> None:
        srsly.write_json(path, self.to_dict())

    def from_disk(self, path: Union[str, Path]) -> "EditGate":
        return self.from_dict(srsly.read_json(path), where=str(path))


class PipelineLinkScorer:
    """Best MedDRA link score per string from the ``component`` (a
    ``clinie_meddra_linker``) of the pipeline at ``pipeline``, loaded on
    first use with every other component excluded; 0.0 for no candidate."""

    def __init__(self, pipeline: str, component: str = "meddra_linker") -> None:
        self.pipeline = pipeline
        self.component = component
        self._linker: Any = None

    def __call__(self, texts: List[str]) -> List[float]:
        if self._linker is None:
            import spacy

            nlp = spacy.load(self.pipeline, exclude=[n for n in _pipe_names(self.pipeline) if n != self.component])
            self._linker = nlp.get_pipe(self.component)
        return [max((c.score for c in cands), default=0.0) for cands in self._linker.link_texts(list(texts))]


def _pipe_names(path: str) -> List[str]:
    from spacy import util

    return list(util.load_config(Path(path) / "config.cfg")["nlp"]["pipeline"])


def load_gate_data(path: Union[str, Path]) -> Tuple[Dict[str, Any], str]:
    """A fitted gate file (``EditGate.to_disk``) and its path as a string."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"gate file {path} not found (write one with `clinie fit-gate`)")
    return srsly.read_json(path), str(path)
