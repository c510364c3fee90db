"""MedDRA coding metrics.

- Accuracy on gold mentions: for each gold ADR mention with a PT, is the
  first ``span._.meddra`` entry of the predicted mention at the same offsets
  the gold PT (and LLT)? A missing prediction counts as wrong. With the set
  of PTs seen in training, the same split into seen and unseen PTs.
- End-to-end mention + PT: a predicted mention is right when its offsets,
  label and best PT all match a gold mention (micro P/R/F1).
- LINK (seed 004, He et al., TACO): per unit, the predicted PT names against
  the gold PT names, matched exactly (case-insensitive) first and then
  fuzzily among those left over (one-to-one, best similarity first, above a
  threshold); precision, recall and F1 of all matches, plus the exact and
  fuzzy shares.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry

from ..extensions import MENTIONS_KEY, get_mentions, register_extensions
from ..tags import ADR_LABEL
from .tac import align_docs, prf, units


def _key(span: Span) -> Tuple[int, int, str]:
    return (span.start_char, span.end_char, span.label_)


def _best(span: Optional[Span]) -> Dict[str, Any]:
    if span is None or not span._.meddra:
        return {}
    return span._.meddra[0]


def gold_pt_ids(span: Span) -> Set[str]:
    return {str(n["meddra_pt_id"]) for n in span._.meddra or [] if n.get("meddra_pt_id")}


def gold_llt_ids(span: Span) -> Set[str]:
    return {str(n["meddra_llt_id"]) for n in span._.meddra or [] if n.get("meddra_llt_id")}


def mention_pairs(
    gold: Doc, pred: Doc, *, spans_key: str = MENTIONS_KEY, labels: Sequence[str] = (ADR_LABEL,)
) -> List[Tuple[Span, Optional[Span]]]:
    """Gold mentions that carry a PT, each with the predicted mention at the
    same offsets and label (or None)."""
    by_key = {_key(s): s for s in get_mentions(pred, spans_key)}
    out = []
    for g in get_mentions(gold, spans_key):
        if labels and g.label_ not in labels:
            continue
        if gold_pt_ids(g):
            out.append((g, by_key.get(_key(g))))
    return out


def meddra_accuracy(
    pairs: Iterable[Tuple[Span, Optional[Span]]], *, seen_pts: Optional[Set[str]] = None
) -> Dict[str, Any]:
    n = pt_ok = llt_ok = covered = 0
    n_unseen = pt_ok_unseen = 0
    for g, p in pairs:
        best = _best(p)
        n += 1
        covered += p is not None
        ok = str(best.get("meddra_pt_id")) in gold_pt_ids(g) if best else False
        pt_ok += ok
        llt_ok += (str(best.get("meddra_llt_id")) in gold_llt_ids(g)) if best else False
        if seen_pts is not None and not (gold_pt_ids(g) & seen_pts):
            n_unseen += 1
            pt_ok_unseen += ok
    out: Dict[str, Any] = {
        "n": n,
        "covered": covered,
        "pt_acc": pt_ok / n if n else 0.0,
        "llt_acc": llt_ok / n if n else 0.0,
    }
    if seen_pts is not None:
        n_seen = n - n_unseen
        out.update(
            {
                "n_unseen_pt": n_unseen,
                "unseen_pt_share": n_unseen / n if n else 0.0,
                "pt_acc_unseen": pt_ok_unseen / n_unseen if n_unseen else 0.0,
                "pt_acc_seen": (pt_ok - pt_ok_unseen) / n_seen if n_seen else 0.0,
            }
        )
    return out


def mention_pt_counts(gold: Doc, pred: Doc, *, spans_key: str = MENTIONS_KEY, labels: Sequence[str] = (ADR_LABEL,)) -> Tuple[int, int, int]:
    """(true positives, predicted, gold) of (start, end, label, PT) tuples."""

    def tuples(doc: Doc, gold_side: bool) -> Set[Tuple[int, int, str, str]]:
        out = set()
        for s in get_mentions(doc, spans_key):
            if labels and s.label_ not in labels:
                continue
            if gold_side:
                out.update((*_key(s), pt) for pt in sorted(gold_pt_ids(s))[:1])
            elif _best(s).get("meddra_pt_id"):
                out.add((*_key(s), str(_best(s)["meddra_pt_id"])))
        return out

    g, p = tuples(gold, True), tuples(pred, False)
    return len(g & p), len(p), len(g)


def _pt_names_gold(doc: Doc) -> Set[str]:
    names: Set[str] = set()
    if doc._.reactions:
        for r in doc._.reactions:
            names.update(n["meddra_pt"] for n in r.get("normalizations") or [] if n.get("meddra_pt"))
        return names
    for s in get_mentions(doc):
        names.update(n["meddra_pt"] for n in s._.meddra or [] if n.get("meddra_pt"))
    return names


def _pt_names_pred(doc: Doc, spans_key: str = MENTIONS_KEY) -> Set[str]:
    return {_best(s)["meddra_pt"] for s in get_mentions(doc, spans_key) if s.label_ == ADR_LABEL and _best(s).get("meddra_pt")}


def link_match(gold: Set[str], pred: Set[str], *, threshold: float = 0.85) -> Tuple[int, int]:
    """Seed 004's LINK matching: exact (case-insensitive) first, then fuzzy
    (rapidfuzz ratio >= threshold) among the unmatched, one-to-one, best
    pairs first. Returns (exact matches, fuzzy matches)."""
    from rapidfuzz import fuzz

    g_left = {x.casefold() for x in gold}
    p_left = {x.casefold() for x in pred}
    exact = g_left & p_left
    g_left -= exact
    p_left -= exact
    pairs = sorted(
        ((fuzz.ratio(g, p) / 100.0, g, p) for g in g_left for p in p_left), key=lambda t: (-t[0], t[1], t[2])
    )
    fuzzy = 0
    for sim, g, p in pairs:
        if sim < threshold:
            break
        if g in g_left and p in p_left:
            g_left.discard(g)
            p_left.discard(p)
            fuzzy += 1
    return len(exact), fuzzy


def link_scores(
    pairs: List[Tuple[Doc, Doc]], *, unit: str = "section", threshold: float = 0.85, spans_key: str = MENTIONS_KEY
) -> Dict[str, Any]:
    n_gold = n_pred = n_exact = n_fuzzy = 0
    for _, group in units(pairs, unit):
        g_names: Set[str] = set()
        p_names: Set[str] = set()
        for g, p in group:
            g_names |= _pt_names_gold(g)
            p_names |= _pt_names_pred(p, spans_key)
        exact, fuzzy = link_match(g_names, p_names, threshold=threshold)
        n_gold += len({x.casefold() for x in g_names})
        n_pred += len({x.casefold() for x in p_names})
        n_exact += exact
        n_fuzzy += fuzzy
    matched = n_exact + n_fuzzy
    scores = prf((matched, n_pred, matched, n_gold))
    scores.update({"exact_match": n_exact / n_gold if n_gold else 0.0, "fuzzy_match": n_fuzzy / n_gold if n_gold else 0.0, "threshold": threshold})
    return scores


def evaluate_meddra(
    gold: Sequence[Doc],
    pred: Sequence[Doc],
    *,
    unit: str = "section",
    seen_pts: Optional[Set[str]] = None,
    link_threshold: float = 0.85,
    spans_key: str = MENTIONS_KEY,
) -> Dict[str, Any]:
    """All MedDRA metrics for one system's docs against gold."""
    register_extensions()
    pairs = align_docs(gold, pred)
    mention_level = [mp for g, p in pairs for mp in mention_pairs(g, p, spans_key=spans_key)]
    tp = n_p = n_g = 0
    for g, p in pairs:
        a, b, c = mention_pt_counts(g, p, spans_key=spans_key)
        tp, n_p, n_g = tp + a, n_p + b, n_g + c
    return {
        "gold_mentions": meddra_accuracy(mention_level, seen_pts=seen_pts),
        "mention_pt": prf((tp, n_p, tp, n_g)),
        "link": link_scores(pairs, unit=unit, threshold=link_threshold, spans_key=spans_key),
    }


def format_meddra_table(scores: Dict[str, Any]) -> str:
    acc, mpt, link = scores["gold_mentions"], scores["mention_pt"], scores["link"]
    lines = [
        f"MedDRA on gold mentions (n={acc['n']}, predicted at gold offsets={acc['covered']}): "
        f"PT acc {acc['pt_acc']:.4f}  LLT acc {acc['llt_acc']:.4f}",
    ]
    if "unseen_pt_share" in acc:
        lines.append(
            f"  PTs unseen in training: {acc['n_unseen_pt']} ({acc['unseen_pt_share']:.2%}), "
            f"PT acc on them {acc['pt_acc_unseen']:.4f}; on seen PTs {acc['pt_acc_seen']:.4f}"
        )
    lines.append(f"mention+PT (strict)  P {mpt['p']:.4f}  R {mpt['r']:.4f}  F1 {mpt['f']:.4f}  gold {mpt['n_gold']}  pred {mpt['n_pred']}")
    lines.append(
        f"LINK (PT names per unit)  P {link['p']:.4f}  R {link['r']:.4f}  F1 {link['f']:.4f}  "
        f"exact {link['exact_match']:.4f} + fuzzy {link['fuzzy_match']:.4f} (ratio >= {link['threshold']})"
    )
    return "\n".join(lines)


def seen_pt_ids(docs: Iterable[Doc]) -> Set[str]:
    """PT codes coded anywhere in a (training) corpus."""
    out: Set[str] = set()
    for doc in docs:
        for r in doc._.reactions or []:
            out.update(str(n["meddra_pt_id"]) for n in r.get("normalizations") or [] if n.get("meddra_pt_id"))
        for s in get_mentions(doc):
            out |= gold_pt_ids(s)
    return out


# ---------------------------------------------------------------- spaCy scorer


def score_meddra(examples: Iterable[Example], *, spans_key: str = MENTIONS_KEY, **_: Any) -> Dict[str, Any]:
    """PT and LLT accuracy of the predicted mentions' best code on the gold
    mentions (for ``nlp.evaluate`` / ``spacy train``)."""
    register_extensions()
    pairs = [mp for eg in examples for mp in mention_pairs(eg.reference, eg.predicted, spans_key=spans_key)]
    acc = meddra_accuracy(pairs)
    return {"meddra_pt_acc": acc["pt_acc"], "meddra_llt_acc": acc["llt_acc"]}


@registry.scorers("clinie.meddra_scorer.v1")
def make_meddra_scorer() -> Callable[..., Dict[str, Any]]:
    return score_meddra
