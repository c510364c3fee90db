"""k-fold resampled ensembles (seed 003).

Seed 003 splits the training data into k equal parts and trains k models,
each on k - 1 parts (leaving out a different part each time), optionally
plus one on all of it, and lets them vote. Here:

1. ``write_folds``: the train docs are grouped by drug label
   (``doc._.label_id``; sections of one label never straddle folds, as in
   the train/dev split), the groups are shuffled with ``seed`` and dealt to
   the k folds, largest first, each to the fold with the fewest words so
   far. ``OUT/fold{i}/train.spacy`` holds the other k - 1 folds,
   ``OUT/fold{i}/heldout.spacy`` fold i; ``full_member`` adds
   ``OUT/full/train.spacy`` (everything). ``OUT/folds.json`` lists the labels
   per fold.
2. ``train_members``: ``python -m spacy train CONFIG`` once per member, one
   after the other, with ``--paths.train`` / ``--paths.dev`` pointing at the
   member's files (dev: ``dev`` if given, else the member's held-out fold;
   the ``full`` member needs ``dev``), a different seed per member
   (``--system.seed``, or ``--training.seed`` for configs without
   ``[system]``) and any extra overrides. A member whose ``model-best`` exists is
   skipped (rerun to resume).
3. ``assemble_ensemble``: a pipeline with the first member's tokenizer and
   one ``clinie_ensemble`` over the members' ``model-best`` (copied inside).
"""
import json
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from spacy.tokens import Doc, DocBin

from .readers import load_docs

PathLike = Union[str, Path]


def group_key(doc: Doc, i: int) -> str:
    """The drug label of a doc (its doc id, else its index, when it has none)."""
    return str(doc._.label_id or doc._.doc_id or f"#{i}")


def split_by_label(docs: Sequence[Doc], k: int, seed: int = 0) -> List[List[int]]:
    """Doc indices per fold; all docs of a label land in one fold, and the
    folds have about the same number of words."""
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    groups: Dict[str, List[int]] = defaultdict(list)
    for i, doc in enumerate(docs):
        groups[group_key(doc, i)].append(i)
    if len(groups) < k:
        raise ValueError(f"{len(groups)} labels cannot fill {k} folds")
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    size = {key: sum(len(docs[i]) for i in groups[key]) for key in keys}
    order = sorted(keys, key=lambda key: -size[key])  # stable: shuffled order breaks ties
    folds: List[List[int]] = [[] for _ in range(k)]
    words = [0] * k
    for key in order:
        f = min(range(k), key=lambda j: (words[j], len(folds[j]), j))
        folds[f].extend(groups[key])
        words[f] += size[key]
    return [sorted(f) for f in folds]


def _write(docs: Sequence[Doc], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=list(docs), store_user_data=True).to_disk(path)


def write_folds(train: PathLike, out_dir: PathLike, *, k: int = 5, seed: int = 0, full_member: bool = False) -> Dict[str, Any]:
    """Write the fold corpora (see the module docstring); returns the summary
    also written to ``OUT/folds.json``."""
    out_dir = Path(out_dir)
    docs = load_docs(train)
    folds = split_by_label(docs, k, seed)
    summary: Dict[str, Any] = {"train": str(train), "k": k, "seed": seed, "members": []}
    for i, fold in enumerate(folds):
        held = set(fold)
        member = out_dir / f"fold{i}"
        _write([d for j, d in enumerate(docs) if j not in held], member / "train.spacy")
        _write([docs[j] for j in fold], member / "heldout.spacy")
        summary["members"].append(
            {
                "name": f"fold{i}",
                "heldout_labels": sorted({group_key(docs[j], j) for j in fold}),
                "heldout_docs": len(fold),
                "heldout_words": sum(len(docs[j]) for j in fold),
                "train_docs": len(docs) - len(fold),
            }
        )
    if full_member:
        _write(docs, out_dir / "full" / "train.spacy")
        summary["members"].append({"name": "full", "heldout_labels": [], "heldout_docs": 0, "heldout_words": 0, "train_docs": len(docs)})
    (out_dir / "folds.json").write_text(json.dumps(summary, indent=2))
    return summary


def member_dirs(out_dir: PathLike) -> List[Path]:
    """The member folders written by ``write_folds``, in order."""
    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "folds.json").read_text())
    return [out_dir / m["name"] for m in summary["members"]]


def train_command(
    config: PathLike,
    member: Path,
    *,
    dev: Optional[PathLike] = None,
    seed: int = 0,
    gpu_id: int = -1,
    overrides: Sequence[str] = (),
    seed_key: str = "system.seed",
) -> List[str]:
    """The ``spacy train`` command line for one member."""
    if dev is None:
        held = member / "heldout.spacy"
        if not held.exists():
            raise ValueError(f"{member.name}: no held-out fold to select on; give a dev corpus")
        dev = held
    return [
        sys.executable, "-m", "spacy", "train", str(config),
        "--output", str(member / "model"),
        "--paths.train", str(member / "train.spacy"),
        "--paths.dev", str(dev),
        f"--{seed_key}", str(seed),
        "--gpu-id", str(gpu_id),
        *overrides,
    ]  # fmt: skip


def train_members(
    config: PathLike,
    out_dir: PathLike,
    *,
    dev: Optional[PathLike] = None,
    seed: int = 0,
    gpu_id: int = -1,
    overrides: Sequence[str] = (),
    only: Optional[Sequence[str]] = None,
    dry_run: bool = False,
    echo: Any = print,
) -> List[Path]:
    """Train the members one after the other; returns their model-best paths."""
    from thinc.api import Config

    cfg = Config().from_disk(config, interpolate=False)
    # configs made by `spacy init config` have [system] seed; others may only have [training] seed
    seed_key = "system.seed" if "seed" in cfg.get("system", {}) else "training.seed"
    best = []
    for n, member in enumerate(member_dirs(out_dir)):
        path = member / "model" / "model-best"
        best.append(path)
        if only and member.name not in only:
            continue
        cmd = train_command(config, member, dev=dev, seed=seed + n, gpu_id=gpu_id, overrides=overrides, seed_key=seed_key)
        if path.exists():
            echo(f"{member.name}: {path} exists, skipped")
            continue
        echo(" ".join(cmd))
        if not dry_run:
            subprocess.run(cmd, check=True)
    return best


def assemble_ensemble(
    members: Sequence[PathLike],
    output: PathLike,
    *,
    voting: str = "hard",
    threshold: float = 0.5,
    min_votes: Optional[int] = None,
    weights_from: Optional[str] = None,
    spans_key: Optional[str] = "mentions",
    cats: bool = True,
    name: str = "ensemble",
) -> Path:
    """Save a pipeline: the first member's tokenizer + a ``clinie_ensemble``
    over ``members`` (each copied inside the saved pipeline)."""
    from spacy.util import load_model_from_config
    from thinc.api import Config

    if not members:
        raise ValueError("no members to assemble")
    for m in members:
        if not (Path(m) / "config.cfg").exists():
            raise ValueError(f"{m}: not a saved pipeline (no config.cfg)")
    first = Config().from_disk(Path(members[0]) / "config.cfg", interpolate=False)
    nlp_section = dict(first["nlp"])
    nlp_section.update({"pipeline": [name], "disabled": []})
    cfg = Config(
        {
            "paths": dict(first.get("paths", {})),
            "system": dict(first.get("system", {})),
            "nlp": nlp_section,
            "components": {
                name: {
                    "factory": "clinie_ensemble",
                    "members": [str(m) for m in members],
                    "voting": voting,
                    "threshold": threshold,
                    "min_votes": min_votes,
                    "weights_from": weights_from,
                    "spans_key": spans_key,
                    "cats": cats,
                }
            },
        }
    )
    nlp = load_model_from_config(cfg, auto_fill=True, validate=True)
    nlp.get_pipe(name).initialize(nlp=nlp)
    nlp.meta["name"] = f"{nlp.meta.get('name', 'pipeline')}_ensemble"
    nlp.meta["description"] = f"{voting} voting over {len(members)} members: " + ", ".join(map(str, members))
    output = Path(output)
    nlp.to_disk(output)
    return output
