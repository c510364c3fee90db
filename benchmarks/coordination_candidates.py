"""Coordination-expansion candidates (issue 19): oracle and realistic numbers.

Settings are chosen on dev (or on train, where the patterns were mined);
the test split is not read here (the verifier's final configuration is
scored on it once, elsewhere).

  # oracle: seeds = the gold contiguous mentions; how many discontiguous
  # gold strings the candidates spell, and how many candidates are not gold
  python benchmarks/coordination_candidates.py oracle corpus/dev.spacy
  python benchmarks/coordination_candidates.py oracle corpus/train.spacy --by-kind

  # realistic: seeds = a tagger's predictions; reaction-level P/R/F1 with
  # and without every candidate added (what a verifier that accepts all
  # would score), with approximate randomisation between the two
  python benchmarks/coordination_candidates.py realistic corpus/dev.spacy training/preds/step250_dev.spacy

  # mining: each discontiguous gold string of a split aligned to its
  # fragments, with what lies between them (train only)
  python benchmarks/coordination_candidates.py mine corpus/train.spacy --show 40

Options: --setting key=value (repeatable) passes settings to
``clinie.CoordinationCandidates.v1``; --output writes a JSON report.
"""

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spacy_clinie.candidates import add_candidate_spans  # noqa: E402
from spacy_clinie.candidates.coordination import CoordinationCandidates  # noqa: E402
from spacy_clinie.convert import load_docs  # noqa: E402
from spacy_clinie.extensions import MENTIONS_KEY, get_mentions  # noqa: E402
from spacy_clinie.scoring import ADR_LABEL, align_docs, compare_systems, evaluate_docs, normalize_string  # noqa: E402

app = typer.Typer(add_completion=False, help=__doc__)


def parse_settings(settings: Sequence[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--setting {item!r}: use key=value")
        out[key] = json.loads(value) if value[:1] in "[{0123456789tf" or value in ("true", "false") else value
    return out


def discontiguous_gold(doc) -> set:
    """The gold reaction strings of a section that have no offsets."""
    return {normalize_string(r["str"]) for r in doc._.reactions or [] if r.get("start") is None}


def all_gold(doc) -> set:
    return {normalize_string(r["str"]) for r in doc._.reactions or []}


def seeds_of(doc) -> List:
    return [s for s in get_mentions(doc, MENTIONS_KEY) if s.label_ == ADR_LABEL]


@app.command()
def oracle(
    corpus: Path,
    setting: List[str] = typer.Option([], "--setting", help="key=value for clinie.CoordinationCandidates.v1"),
    by_kind: bool = typer.Option(False, "--by-kind", help="precision and hits per construction"),
    show: int = typer.Option(0, "--show", help="print this many missed gold strings and false candidates"),
    output: Optional[Path] = typer.Option(None, "--output"),
) -> None:
    """Seeds = gold contiguous mentions (projected to every occurrence)."""
    docs = load_docs(corpus)
    generate = CoordinationCandidates(**parse_settings(setting))
    n_disc = hit = n_cand = cand_gold = cand_disc = 0
    kinds: Dict[str, Counter] = {}
    missed: List[str] = []
    false: List[str] = []
    for doc in docs:
        disc, gold = discontiguous_gold(doc), all_gold(doc)
        cands = generate(doc, seeds_of(doc))
        strings: Dict[str, str] = {}
        for c in cands:
            strings.setdefault(normalize_string(c.text), c.kind)
        n_disc += len(disc)
        hit += len(disc & set(strings))
        n_cand += len(strings)
        cand_gold += len(gold & set(strings))
        cand_disc += len(disc & set(strings))
        for s, kind in strings.items():
            k = kinds.setdefault(kind, Counter())
            k["candidates"] += 1
            k["gold"] += s in gold
            k["discontiguous_gold"] += s in disc
            if s not in gold:
                false.append(f"{kind:13} {s!r}  [{doc._.doc_id}]")
        missed.extend(f"{s!r}  [{doc._.doc_id}]" for s in sorted(disc - set(strings)))
    result = {
        "corpus": str(corpus),
        "settings": parse_settings(setting),
        "discontiguous_gold": n_disc,
        "discontiguous_gold_spelled": hit,
        "recall_of_discontiguous": hit / n_disc if n_disc else 0.0,
        "candidates": n_cand,
        "candidates_gold": cand_gold,
        "precision": cand_gold / n_cand if n_cand else 0.0,
        "by_kind": {k: dict(v) for k, v in sorted(kinds.items())},
    }
    print(
        f"{corpus}: discontiguous gold strings {n_disc}, spelled by a candidate {hit} ({result['recall_of_discontiguous']:.3f})"
    )
    print(
        f"unique candidate strings per section {n_cand}, gold {cand_gold} (precision {result['precision']:.3f})"
    )
    if by_kind:
        for k, v in result["by_kind"].items():
            print(
                f"  {k:13} candidates {v['candidates']:5}  gold {v['gold']:4}  discontiguous gold {v['discontiguous_gold']:4}  precision {v['gold'] / v['candidates']:.3f}"
            )
    if show:
        print("\nmissed:")
        print("\n".join(missed[:show]))
        print("\nnot gold:")
        print("\n".join(false[:show]))
    if output:
        output.write_text(json.dumps(result, indent=2))


@app.command()
def realistic(
    gold_corpus: Path,
    pred_corpus: Path,
    setting: List[str] = typer.Option([], "--setting", help="key=value for clinie.CoordinationCandidates.v1"),
    output: Optional[Path] = typer.Option(None, "--output"),
    iterations: int = typer.Option(10000, "--iterations", help="approximate randomisation shuffles"),
) -> None:
    """Seeds = a tagger's predicted reaction spans; reaction-level scores
    without and with all candidates added as spans."""
    gold = load_docs(gold_corpus)
    base = load_docs(pred_corpus)
    expanded = load_docs(pred_corpus)
    generate = CoordinationCandidates(**parse_settings(setting))
    kinds: Counter = Counter()
    kinds_gold: Counter = Counter()
    pairs = align_docs(gold, expanded)
    for g, p in pairs:
        added = add_candidate_spans(p, generate(p, seeds_of(p)))
        gs = all_gold(g)
        for span in added:
            kind = span._.attributes["kind"]
            kinds[kind] += 1
            kinds_gold[kind] += normalize_string(" ".join(p.text[a:b] for a, b in span._.fragments)) in gs
    before = evaluate_docs(gold, base, levels=("reaction",))
    after = evaluate_docs(gold, expanded, levels=("reaction",))
    result: Dict[str, Any] = {
        "gold": str(gold_corpus),
        "pred": str(pred_corpus),
        "settings": parse_settings(setting),
        "reaction_without": before["reaction"],
        "reaction_with_all_candidates": after["reaction"],
        "spans_added": sum(kinds.values()),
        "spans_added_gold": sum(kinds_gold.values()),
        "by_kind": {k: {"added": kinds[k], "gold": kinds_gold[k]} for k in sorted(kinds)},
    }
    result["significance"] = compare_systems(
        gold, expanded, base, levels=("reaction",), n_shuffles=iterations
    )["reaction"]
    print(json.dumps(result, indent=2, default=float))
    if output:
        output.write_text(json.dumps(result, indent=2, default=float))


def _occurrences(text: str, words: Sequence[str]) -> List[Tuple[int, int]]:
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text, re.I)]


def align_string(text: str, string: str, max_span: int = 250) -> Optional[List[Tuple[int, int]]]:
    """The tightest fragments (in text order, at most ``max_span``
    characters from first to last) that spell ``string``."""
    words = string.split()
    best: Optional[Tuple[int, List[Tuple[int, int]]]] = None
    for cuts in range(1 << (len(words) - 1)):
        groups, cur = [], [words[0]]
        for i in range(1, len(words)):
            if cuts >> (i - 1) & 1:
                groups.append(cur)
                cur = [words[i]]
            else:
                cur.append(words[i])
        groups.append(cur)
        occs = [_occurrences(text, g) for g in groups]
        if not all(occs):
            continue
        for first in occs[0]:
            frags = [first]
            for occ in occs[1:]:
                nxt = next((o for o in occ if o[0] > frags[-1][1]), None)
                if nxt is None:
                    break
                frags.append(nxt)
            else:
                span = frags[-1][1] - frags[0][0]
                if span <= max_span and (best is None or span < best[0]):
                    best = (span, frags)
    return best[1] if best else None


@app.command()
def mine(corpus: Path, show: int = typer.Option(20, "--show")) -> None:
    """Align each discontiguous gold string to its tightest fragments and
    count what lies between them (the constructions to cover)."""
    docs = load_docs(corpus)
    shapes: Counter = Counter()
    examples: List[str] = []
    for doc in docs:
        for r in doc._.reactions or []:
            if r.get("start") is not None:
                continue
            frags = align_string(doc.text, r["str"])
            if frags is None:
                shapes["not found within 250 characters"] += 1
                continue
            if len(frags) == 1:
                shapes["contiguous up to whitespace"] += 1
                continue
            gaps = " | ".join(doc.text[a:b] for (_, a), (b, _) in zip(frags, frags[1:]))
            shape = re.sub(r"[A-Za-z][\w-]*", "w", gaps)
            shape = re.sub(r"\s+", " ", shape)
            shapes[shape] += 1
            examples.append(
                f"{r['str']!r:50} <- {' + '.join(repr(doc.text[a:b]) for a, b in frags)}  gaps {gaps!r}"
            )
    for shape, n in shapes.most_common(30):
        print(f"{n:5}  {shape!r}")
    print("\n".join(examples[:show]))


if __name__ == "__main__":
    app()
