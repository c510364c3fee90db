"""TAC-style evaluation: mention (strict / relaxed), unique-string (reaction),
MedDRA PT and relation P/R/F1, plus paired significance tests.

Every level reduces each evaluation unit (a section Doc, or a drug label when
``unit="label"``) to a count vector ``(tp_pred, n_pred, tp_gold, n_gold)``:
precision is ``tp_pred / n_pred`` and recall ``tp_gold / n_gold``. For exact
matching ``tp_pred == tp_gold``; relaxed matching counts a predicted span as
correct when it overlaps a gold span of the same type, and a gold span as
found when a prediction of the same type overlaps it. Summing vectors gives
micro scores, and the significance tests shuffle the per-unit vectors.
"""
from collections import defaultdict
from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry

from ..errors import Errors
from ..extensions import MENTIONS_KEY, get_mentions, register_extensions
from ..tags import ADR_LABEL

Counts = Dict[str, numpy.ndarray]  # type -> (tp_pred, n_pred, tp_gold, n_gold)
MICRO = "__micro__"


def normalize_string(text: str) -> str:
    """Reaction-level key: lowercased, whitespace-normalised."""
    return " ".join(text.lower().split())


def prf(vec: Sequence[float]) -> Dict[str, float]:
    tp_p, n_p, tp_g, n_g = (float(x) for x in vec)
    p = tp_p / n_p if n_p else 0.0
    r = tp_g / n_g if n_g else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": p, "r": r, "f": f, "tp": int(tp_g), "n_pred": int(n_p), "n_gold": int(n_g)}


def _vec(tp_pred: int, n_pred: int, tp_gold: int, n_gold: int) -> numpy.ndarray:
    return numpy.array([tp_pred, n_pred, tp_gold, n_gold], dtype="float64")


def span_text(span: Span) -> str:
    """The text a mention spells: its fragments joined for a discontiguous
    one (the reaction string TAC lists), else the covered text."""
    fragments = span._.fragments
    if fragments and len(fragments) > 1:
        return " ".join(span.doc.text[s:e] for s, e in fragments)
    return span.text


# ---------------------------------------------------------------- alignment


def align_docs(gold: Sequence[Doc], pred: Sequence[Doc]) -> List[Tuple[Doc, Doc]]:
    """Pair gold and predicted docs by ``doc._.doc_id`` (or by position when
    ids are missing) and check that the texts are identical."""
    register_extensions()
    if len(gold) != len(pred):
        raise ValueError(Errors.E013.format(reason=f"{len(gold)} gold docs vs {len(pred)} predicted"))
    gold_ids = [d._.doc_id for d in gold]
    pred_ids = [d._.doc_id for d in pred]
    if all(gold_ids) and all(pred_ids) and set(gold_ids) == set(pred_ids):
        by_id = {d._.doc_id: d for d in pred}
        pairs = [(g, by_id[g._.doc_id]) for g in gold]
    else:
        pairs = list(zip(gold, pred))
    for g, p in pairs:
        if g.text != p.text:
            raise ValueError(Errors.E013.format(reason=f"text differs for doc {g._.doc_id or '?'}"))
    return pairs


def units(pairs: List[Tuple[Doc, Doc]], unit: str) -> List[Tuple[str, List[Tuple[Doc, Doc]]]]:
    """The aligned (gold, pred) pairs grouped by evaluation unit: a section
    Doc (``doc._.doc_id``) or a drug label (``doc._.label_id``)."""
    if unit not in ("section", "label"):
        raise ValueError(f"unit must be 'section' or 'label', got {unit!r}")
    groups: Dict[str, List[Tuple[Doc, Doc]]] = {}
    for i, (g, p) in enumerate(pairs):
        key = (g._.label_id if unit == "label" else g._.doc_id) or f"#{i}"
        groups.setdefault(key, []).append((g, p))
    return list(groups.items())


def _add(counts: Counts, label: str, vec: numpy.ndarray) -> None:
    counts[label] = counts.get(label, numpy.zeros(4)) + vec
    counts[MICRO] = counts.get(MICRO, numpy.zeros(4)) + vec


# ---------------------------------------------------------------- levels


def mention_counts(
    gold: Doc,
    pred: Doc,
    *,
    relaxed: bool,
    spans_key: str = MENTIONS_KEY,
    pred_spans_key: Optional[str] = None,
    labels: Optional[Set[str]] = None,
) -> Counts:
    g_spans = [s for s in get_mentions(gold, spans_key) if labels is None or s.label_ in labels]
    p_spans = [s for s in get_mentions(pred, pred_spans_key or spans_key) if labels is None or s.label_ in labels]
    counts: Counts = {MICRO: numpy.zeros(4)}
    for label in sorted({s.label_ for s in g_spans} | {s.label_ for s in p_spans}):
        gs = {(s.start_char, s.end_char) for s in g_spans if s.label_ == label}
        ps = {(s.start_char, s.end_char) for s in p_spans if s.label_ == label}
        if relaxed:
            tp_p = sum(any(a < e and s < b for s, e in gs) for a, b in ps)
            tp_g = sum(any(a < e and s < b for s, e in ps) for a, b in gs)
        else:
            tp_p = tp_g = len(gs & ps)
        _add(counts, label, _vec(tp_p, len(ps), tp_g, len(gs)))
    return counts


def gold_strings(doc: Doc, spans_key: str = MENTIONS_KEY) -> Dict[str, Set[str]]:
    """Unique normalised strings per type. AdverseReaction strings come from
    ``doc._.reactions`` when present: the unit TAC annotates, including
    discontiguous and nested entries that are not spans."""
    out: Dict[str, Set[str]] = defaultdict(set)
    for span in get_mentions(doc, spans_key):
        out[span.label_].add(normalize_string(span_text(span)))
    if doc._.reactions:
        out[ADR_LABEL] = {normalize_string(r["str"]) for r in doc._.reactions}
    return out


def pred_strings(doc: Doc, spans_key: str = MENTIONS_KEY) -> Dict[str, Set[str]]:
    out: Dict[str, Set[str]] = defaultdict(set)
    for span in get_mentions(doc, spans_key):
        out[span.label_].add(normalize_string(span_text(span)))
    return out


def set_counts(gold: Dict[str, Set[Any]], pred: Dict[str, Set[Any]], labels: Optional[Set[str]]) -> Counts:
    """Count vectors per label (and ``MICRO``) of two ``{label: set}`` maps
    matched exactly: the reaction, PT and relation levels."""
    counts: Counts = {MICRO: numpy.zeros(4)}
    for label in sorted(set(gold) | set(pred)):
        if labels is not None and label not in labels:
            continue
        g, p = gold.get(label, set()), pred.get(label, set())
        tp = len(g & p)
        _add(counts, label, _vec(tp, len(p), tp, len(g)))
    return counts


def gold_pt_codes(doc: Doc) -> Set[str]:
    codes: Set[str] = set()
    if doc._.reactions:
        for r in doc._.reactions:
            codes.update(str(n["meddra_pt_id"]) for n in r.get("normalizations") or [] if n.get("meddra_pt_id"))
        return codes
    for span in get_mentions(doc):
        codes.update(str(n["meddra_pt_id"]) for n in span._.meddra or [] if n.get("meddra_pt_id"))
    return codes


def pred_pt_codes(doc: Doc, spans_key: str = MENTIONS_KEY) -> Set[str]:
    """The best (first) PT of each predicted ADR span."""
    codes = set()
    for span in get_mentions(doc, spans_key):
        if span.label_ == ADR_LABEL and span._.meddra and span._.meddra[0].get("meddra_pt_id"):
            codes.add(str(span._.meddra[0]["meddra_pt_id"]))
    return codes


def relation_tuples(doc: Doc, spans_key: str = MENTIONS_KEY) -> Dict[str, Set[Tuple]]:
    spans = {s.id_: s for s in get_mentions(doc, spans_key)}
    out: Dict[str, Set[Tuple]] = defaultdict(set)
    for rel in doc._.relations or []:
        h, t = spans.get(rel["head"]), spans.get(rel["tail"])
        if h is None or t is None:
            continue
        out[rel["label"]].add(((h.start_char, h.end_char, h.label_), (t.start_char, t.end_char, t.label_)))
    return out


LEVELS = ("mention_strict", "mention_relaxed", "reaction", "pt", "relation")


def unit_counts(
    pairs: List[Tuple[Doc, Doc]],
    level: str,
    *,
    unit: str = "section",
    spans_key: str = MENTIONS_KEY,
    pred_spans_key: Optional[str] = None,
    labels: Optional[Set[str]] = None,
) -> List[Counts]:
    """One Counts dict per evaluation unit, for one level."""
    pkey = pred_spans_key or spans_key
    result = []
    for _, group in units(pairs, unit):
        counts: Counts = {MICRO: numpy.zeros(4)}
        if level in ("mention_strict", "mention_relaxed"):
            for g, p in group:
                for label, vec in mention_counts(
                    g, p, relaxed=level == "mention_relaxed", spans_key=spans_key, pred_spans_key=pkey, labels=labels
                ).items():
                    if label != MICRO:
                        _add(counts, label, vec)
        elif level == "reaction":
            gs: Dict[str, Set[str]] = defaultdict(set)
            ps: Dict[str, Set[str]] = defaultdict(set)
            for g, p in group:
                for k, v in gold_strings(g, spans_key).items():
                    gs[k] |= v
                for k, v in pred_strings(p, pkey).items():
                    ps[k] |= v
            counts = set_counts(gs, ps, labels)
        elif level == "pt":
            gcodes: Set[str] = set()
            pcodes: Set[str] = set()
            for g, p in group:
                gcodes |= gold_pt_codes(g)
                pcodes |= pred_pt_codes(p, pkey)
            counts = set_counts({"PT": gcodes}, {"PT": pcodes}, None)
        elif level == "relation":
            # Relations are matched per doc (offsets are per section).
            for g, p in group:
                for label, vec in set_counts(relation_tuples(g, spans_key), relation_tuples(p, pkey), None).items():
                    if label != MICRO:
                        _add(counts, label, vec)
        else:
            raise ValueError(f"unknown level {level!r}; choose from {LEVELS}")
        result.append(counts)
    return result


def summarize(per_unit: List[Counts]) -> Dict[str, Any]:
    total: Counts = {}
    for counts in per_unit:
        for label, vec in counts.items():
            total[label] = total.get(label, numpy.zeros(4)) + vec
    micro = prf(total.get(MICRO, numpy.zeros(4)))
    per_type = {label: prf(vec) for label, vec in sorted(total.items()) if label != MICRO}
    return {"micro": micro, "per_type": per_type}


def evaluate_docs(
    gold: Sequence[Doc],
    pred: Sequence[Doc],
    *,
    unit: str = "section",
    levels: Sequence[str] = LEVELS,
    spans_key: str = MENTIONS_KEY,
    pred_spans_key: Optional[str] = None,
    labels: Optional[Iterable[str]] = None,
) -> Dict[str, Any]:
    """All levels for one system. ``unit`` groups docs for the reaction and
    PT levels (``section`` or ``label``); mentions and relations are always
    matched within their own doc."""
    pairs = align_docs(gold, pred)
    label_set = set(labels) if labels else None
    scores = {
        level: summarize(
            unit_counts(pairs, level, unit=unit, spans_key=spans_key, pred_spans_key=pred_spans_key, labels=label_set)
        )
        for level in levels
    }
    scores["n_docs"] = len(pairs)
    scores["unit"] = unit
    return scores


# ---------------------------------------------------------------- significance


def _f1_rows(m: numpy.ndarray) -> numpy.ndarray:
    """F1 of each row of summed count vectors (shape (..., 4))."""
    with numpy.errstate(divide="ignore", invalid="ignore"):
        p = numpy.where(m[..., 1] > 0, m[..., 0] / m[..., 1], 0.0)
        r = numpy.where(m[..., 3] > 0, m[..., 2] / m[..., 3], 0.0)
        f = numpy.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return f


def _micro_matrix(per_unit: List[Counts]) -> numpy.ndarray:
    return numpy.stack([c.get(MICRO, numpy.zeros(4)) for c in per_unit]) if per_unit else numpy.zeros((0, 4))


def approximate_randomization(
    a: List[Counts], b: List[Counts], *, n_shuffles: int = 10000, seed: int = 0
) -> Dict[str, float]:
    """Two-sided approximate randomisation on micro F1: swap the two systems'
    outputs per unit with probability 0.5; p = (r + 1) / (n + 1)."""
    A, B = _micro_matrix(a), _micro_matrix(b)
    observed = abs(_f1_rows(A.sum(0)) - _f1_rows(B.sum(0)))
    rng = numpy.random.default_rng(seed)
    swap = rng.random((n_shuffles, len(A))) < 0.5
    sa = (~swap).astype(float) @ A + swap.astype(float) @ B
    sb = swap.astype(float) @ A + (~swap).astype(float) @ B
    diffs = numpy.abs(_f1_rows(sa) - _f1_rows(sb))
    r = int((diffs >= observed - 1e-12).sum())
    return {"delta_f": float(_f1_rows(A.sum(0)) - _f1_rows(B.sum(0))), "p_value": (r + 1) / (n_shuffles + 1), "n_shuffles": n_shuffles}


def paired_bootstrap(
    a: List[Counts], b: List[Counts], *, n_samples: int = 10000, seed: int = 0
) -> Dict[str, float]:
    """Paired bootstrap over units (Koehn 2004): resample units with
    replacement; p is the share of samples in which the observed winner is
    not ahead (one-sided), with a 95% interval of the F1 difference."""
    A, B = _micro_matrix(a), _micro_matrix(b)
    delta = float(_f1_rows(A.sum(0)) - _f1_rows(B.sum(0)))
    rng = numpy.random.default_rng(seed)
    idx = rng.integers(0, len(A), size=(n_samples, len(A)))
    counts = numpy.zeros((n_samples, len(A)))
    numpy.add.at(counts, (numpy.arange(n_samples)[:, None], idx), 1.0)
    deltas = _f1_rows(counts @ A) - _f1_rows(counts @ B)
    sign = 1.0 if delta >= 0 else -1.0
    p = float(((sign * deltas) <= 0).mean())
    lo, hi = numpy.percentile(deltas, [2.5, 97.5])
    return {"delta_f": delta, "p_value": p, "ci95": [float(lo), float(hi)], "n_samples": n_samples}


def compare_systems(
    gold: Sequence[Doc],
    pred_a: Sequence[Doc],
    pred_b: Sequence[Doc],
    *,
    unit: str = "section",
    levels: Sequence[str] = ("mention_strict", "mention_relaxed", "reaction", "pt"),
    n_shuffles: int = 10000,
    seed: int = 0,
    spans_key: str = MENTIONS_KEY,
    labels: Optional[Iterable[str]] = None,
) -> Dict[str, Any]:
    pairs_a = align_docs(gold, pred_a)
    pairs_b = align_docs(gold, pred_b)
    label_set = set(labels) if labels else None
    out = {}
    for level in levels:
        ca = unit_counts(pairs_a, level, unit=unit, spans_key=spans_key, labels=label_set)
        cb = unit_counts(pairs_b, level, unit=unit, spans_key=spans_key, labels=label_set)
        out[level] = {
            "approximate_randomization": approximate_randomization(ca, cb, n_shuffles=n_shuffles, seed=seed),
            "paired_bootstrap": paired_bootstrap(ca, cb, n_samples=n_shuffles, seed=seed),
        }
    return out


# ---------------------------------------------------------------- reporting


def format_table(scores: Dict[str, Any]) -> str:
    lines = [f"{'level':<18}{'type':<22}{'P':>8}{'R':>8}{'F1':>8}{'gold':>8}{'pred':>8}"]
    for level in LEVELS:
        if level not in scores:
            continue
        s = scores[level]
        m = s["micro"]
        lines.append(f"{level:<18}{'(micro)':<22}{m['p']:>8.4f}{m['r']:>8.4f}{m['f']:>8.4f}{m['n_gold']:>8}{m['n_pred']:>8}")
        if len(s["per_type"]) > 1:
            for label, t in s["per_type"].items():
                lines.append(f"{'':<18}{label[:21]:<22}{t['p']:>8.4f}{t['r']:>8.4f}{t['f']:>8.4f}{t['n_gold']:>8}{t['n_pred']:>8}")
    return "\n".join(lines)


# ---------------------------------------------------------------- spaCy scorer


def score_mentions(examples: Iterable[Example], *, spans_key: str = MENTIONS_KEY, **_: Any) -> Dict[str, Any]:
    """spaCy scorer: strict and relaxed mention P/R/F1 plus per-type strict."""
    register_extensions()
    strict: Counts = {}
    relaxed: Counts = {}
    for eg in examples:
        for target, is_relaxed in ((strict, False), (relaxed, True)):
            for label, vec in mention_counts(eg.reference, eg.predicted, relaxed=is_relaxed, spans_key=spans_key).items():
                target[label] = target.get(label, numpy.zeros(4)) + vec
    s = prf(strict.get(MICRO, numpy.zeros(4)))
    r = prf(relaxed.get(MICRO, numpy.zeros(4)))
    return {
        f"{spans_key}_p": s["p"],
        f"{spans_key}_r": s["r"],
        f"{spans_key}_f": s["f"],
        f"{spans_key}_relaxed_f": r["f"],
        f"{spans_key}_per_type": {k: {m: prf(v)[m] for m in "prf"} for k, v in strict.items() if k != MICRO},
    }


@registry.scorers("clinie.mention_scorer.v1")
def make_mention_scorer(spans_key: str = MENTIONS_KEY) -> Callable[..., Dict[str, Any]]:
    # a partial, not a closure, so that pipelines using it can be pickled
    return partial(score_mentions, spans_key=spans_key)
