"""Convert source corpora to ``.spacy`` files with a report that reconciles
with the source, and compute corpus statistics."""
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from .errors import Errors, FormatError, Warnings
from .extensions import get_mentions, register_extensions
from .formats import FORMATS
from .readers import Report, read_brat_dir, read_euadr, read_onsides, read_tac_xml
# re-exported: scripts written before load_docs moved to readers/ import it from here
from .readers.docbin import load_docs, unannotated  # noqa: F401
from .tokenizer import make_blank

SPLITS = ("train", "dev", "test")


def read_source(
    fmt: str,
    path: Union[str, Path],
    nlp: Language,
    report: Report,
    *,
    strict: bool = False,
    discontiguous: str = "merge",
    project: bool = True,
) -> Iterator[Doc]:
    """Docs from one source file or folder in format ``fmt``. Whole files
    that cannot be read are skipped into ``report`` unless ``strict``."""
    path = Path(path)
    read: Callable[[Path], Iterator[Doc]]
    if fmt == "tac-onsides":
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        read = lambda f: read_onsides(nlp, f, project=project, report=report, strict=strict)  # noqa: E731
    elif fmt == "tac-xml":
        files = sorted(path.glob("*.xml")) if path.is_dir() else [path]
        read = lambda f: read_tac_xml(nlp, f, report=report, discontiguous=discontiguous, strict=strict)  # noqa: E731
    elif fmt == "brat":
        files = [path]
        read = lambda f: read_brat_dir(nlp, f, report=report, discontiguous=discontiguous, strict=strict)  # noqa: E731
    elif fmt == "euadr":
        files = sorted(path.glob("*.csv")) + sorted(path.glob("*.tsv")) if path.is_dir() else [path]
        read = lambda f: read_euadr(nlp, f, report=report, strict=strict)  # noqa: E731
    else:
        raise ValueError(Errors.E012.format(fmt=fmt, choices=", ".join(FORMATS)))
    for f in files:
        try:
            yield from read(f)
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "file")


def _skip_summary(report: Report, n: int = 3) -> str:
    """The first reasons a conversion skipped things, for an error message."""
    if not report.skipped:
        return ""
    items = [
        " ".join(x for x in (item.get("path"), item.get("record") and f"record {item['record']}") if x)
        + f": {item['reason']}"
        for item in report.skipped[:n]
    ]
    more = f" (and {len(report.skipped) - n} more)" if len(report.skipped) > n else ""
    return " Skipped: " + "; ".join(items) + more


def find_splits(fmt: str, path: Union[str, Path]) -> List[Tuple[str, Path]]:
    """``train``/``dev``/``test`` files or folders inside ``path``, or the
    path itself as one split named after its stem."""
    path = Path(path)
    if path.is_dir():
        found = []
        for split in SPLITS:
            for cand in sorted(path.glob(f"{split}*")):
                wants_dir = fmt == "brat" or (fmt == "tac-xml" and cand.is_dir())
                if cand.is_dir() == wants_dir:
                    found.append((split, cand))
                    break
        if found:
            return found
    return [(path.stem if path.is_file() else path.name, path)]


def split_dev(docs: List[Doc], fraction: float, seed: int) -> Tuple[List[Doc], List[Doc]]:
    """Seeded split by drug label (``doc._.label_id``), so that the sections
    of one label never sit on both sides."""
    groups = sorted({d._.label_id or d._.doc_id or str(i) for i, d in enumerate(docs)})
    rng = random.Random(seed)
    rng.shuffle(groups)
    n_dev = max(1, round(len(groups) * fraction)) if fraction > 0 and len(groups) > 1 else 0
    dev_groups = set(groups[:n_dev])
    key = lambda i, d: d._.label_id or d._.doc_id or str(i)  # noqa: E731
    train = [d for i, d in enumerate(docs) if key(i, d) not in dev_groups]
    dev = [d for i, d in enumerate(docs) if key(i, d) in dev_groups]
    return train, dev


def corpus_stats(docs: Sequence[Doc]) -> Dict[str, Any]:
    labels: Counter = Counter()
    kinds: Counter = Counter()
    rel_labels: Counter = Counter()
    pts = set()
    n_reactions = n_unplaced = projected = discontig = 0
    for doc in docs:
        for span in get_mentions(doc):
            labels[span.label_] += 1
            projected += bool(span._.projected)
            discontig += len(span._.fragments or []) > 1
            if span._.kind:
                kinds[span._.kind] += 1
        for r in doc._.reactions or []:
            n_reactions += 1
            n_unplaced += r.get("start", 0) is None
            pts.update(str(n["meddra_pt_id"]) for n in r.get("normalizations") or [] if n.get("meddra_pt_id"))
        for rel in doc._.relations or []:
            rel_labels[rel["label"]] += 1
    return {
        "docs": len(docs),
        "source_documents": len({d._.label_id for d in docs}),
        "words": sum(len(d) for d in docs),
        "mentions": sum(labels.values()),
        "mentions_by_type": dict(labels.most_common()),
        "mentions_projected": projected,
        "mentions_discontiguous": discontig,
        "mentions_by_kind": dict(kinds.most_common()),
        "reaction_entries": n_reactions,
        "reaction_entries_without_offsets": n_unplaced,
        "unique_pt_codes": len(pts),
        "relations": sum(rel_labels.values()),
        "relations_by_type": dict(rel_labels.most_common()),
    }


def convert(
    input_path: Union[str, Path],
    output_dir: Union[str, Path],
    fmt: str,
    *,
    dev_fraction: float = 0.1,
    seed: int = 0,
    strict: bool = False,
    discontiguous: str = "merge",
    project: bool = True,
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Write ``<split>.spacy`` per split (plus a seeded ``dev`` taken from
    ``train``) and ``convert_report.json``; return the report."""
    register_extensions()
    if fmt not in FORMATS:
        raise ValueError(Errors.E012.format(fmt=fmt, choices=", ".join(FORMATS)))
    if discontiguous not in ("merge", "skip"):
        raise ValueError(f"discontiguous must be 'merge' or 'skip', got {discontiguous!r}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    nlp = make_blank()
    result: Dict[str, Any] = {"format": fmt, "input": str(input_path), "splits": {}, "policy": {
        "discontiguous": discontiguous, "project": project, "dev_fraction": dev_fraction, "seed": seed}}
    split_docs: Dict[str, List[Doc]] = {}
    for split, path in find_splits(fmt, input_path):
        if progress:
            progress(f"reading {split} from {path}")
        report = Report()
        docs = list(read_source(fmt, path, nlp, report, strict=strict, discontiguous=discontiguous, project=project))
        if not docs:
            raise FormatError(Errors.E014.format(path=path) + _skip_summary(report), path=path)
        split_docs[split] = docs
        result["splits"][split] = {"source": str(path), "report": report.to_dict()}
        if report.skipped and progress:
            progress(Warnings.W001.format(path=path, n=len(report.skipped)))
    if "train" in split_docs and "dev" not in split_docs and dev_fraction > 0:
        train, dev = split_dev(split_docs["train"], dev_fraction, seed)
        split_docs["train"], split_docs["dev"] = train, dev
        result["splits"]["dev"] = {"source": f"{dev_fraction:.0%} of train by label, seed {seed}"}
    order = sorted(split_docs, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))
    result["splits"] = {split: result["splits"][split] for split in order}
    for split in order:
        docs = split_docs[split]
        out = output_dir / f"{split}.spacy"
        DocBin(docs=docs, store_user_data=True).to_disk(out)
        result["splits"][split]["output"] = str(out)
        result["splits"][split]["stats"] = corpus_stats(docs)
    srsly.write_json(output_dir / "convert_report.json", result)
    return result


def format_report(result: Dict[str, Any]) -> str:
    lines = []
    for split, info in result["splits"].items():
        stats = info.get("stats", {})
        counts = info.get("report", {}).get("counts", {})
        lines.append(f"[{split}] {info['source']} -> {info.get('output')}")
        lines.append(
            f"  docs {stats.get('docs')}  source documents {stats.get('source_documents')}  words {stats.get('words')}"
        )
        lines.append(
            f"  mentions {stats.get('mentions')} (projected {stats.get('mentions_projected')}, "
            f"discontiguous merged {stats.get('mentions_discontiguous')})  by type {json.dumps(stats.get('mentions_by_type'))}"
        )
        if stats.get("reaction_entries"):
            lines.append(
                f"  reaction entries {stats['reaction_entries']} (without offsets, kept for evaluation: "
                f"{stats['reaction_entries_without_offsets']})  unique PT codes {stats['unique_pt_codes']}"
            )
        if stats.get("relations"):
            lines.append(f"  relations {stats['relations']} {json.dumps(stats['relations_by_type'])}")
        if counts:
            lines.append("  source reconciliation: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for item in info.get("report", {}).get("skipped", [])[:10]:
            lines.append(f"  SKIPPED {item['kind']}: {item['path']} {item.get('record') or ''}: {item['reason']}")
        n_skipped = len(info.get("report", {}).get("skipped", []))
        if n_skipped > 10:
            lines.append(f"  ... and {n_skipped - 10} more skipped (see convert_report.json)")
    return "\n".join(lines)
