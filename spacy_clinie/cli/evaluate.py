from pathlib import Path
from typing import List, Optional

import srsly
import typer

from ..errors import FormatError
from ._util import Arg, Opt, app


@app.command("evaluate")
def evaluate_cli(
    gold_path: Path = Arg(..., help="Gold .spacy file (from 'clinie convert').", exists=True, dir_okay=False),
    pred: str = Arg(..., help="Predictions: a .spacy file, or a trained pipeline (folder or installed package) to run on the gold texts."),
    compare: Optional[str] = Opt(None, "--compare", "-c", help="A second system (same forms as PRED): adds approximate randomisation and paired bootstrap tests of PRED vs this one."),
    unit: str = Opt("section", "--unit", help="Unit for reaction and PT levels: section (the shared TAC data's unit) or label (TAC Task 4's unit)."),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Write all scores as JSON here."),
    n_shuffles: int = Opt(10000, "--n-shuffles", help="Shuffles / bootstrap samples for the significance tests."),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU to run a pipeline on; -1 for CPU."),
    linker: Optional[str] = Opt(None, "--linker", help="A pipeline with a clinie_meddra_linker: codes copies of the GOLD mentions, for MedDRA accuracy apart from the tagger (default: PRED's own codes at gold offsets)."),
    seen: Optional[List[Path]] = Opt(None, "--seen", help="Training corpora (.spacy): split MedDRA accuracy into PTs seen / never seen there. Repeatable.", exists=True, dir_okay=False),
    link_threshold: float = Opt(0.85, "--link-threshold", help="LINK fuzzy stage: minimum rapidfuzz ratio (0-1) for an unmatched PT name pair."),
    labels: Optional[List[str]] = Opt(None, "--labels", "-l", help="Score only these mention types at the mention and reaction levels (repeatable), e.g. --labels AdverseReaction for en_clinie_ade on TAC, whose Drug mentions TAC does not annotate. Default: all types."),
) -> None:
    """Score predictions against gold, TAC-style.

    Levels: mention strict (exact boundaries and type) and relaxed (overlap,
    same type); reaction (unique lowercased ADR strings per unit, the unit the
    shared TAC data annotates); MedDRA PT (unique PT codes per unit); and
    relations. MedDRA coding: PT and LLT accuracy on gold mentions (PRED's
    codes at gold offsets, or --linker's on the gold mentions themselves),
    end-to-end mention + PT F1, and seed 004's LINK scores (PT names per
    unit, exact then fuzzy). Prints a table; --output writes JSON.
    """
    from ..readers import load_docs, system_docs
    from ..scoring import compare_systems, evaluate_docs, format_table
    from ..scoring.meddra import evaluate_meddra, format_meddra_table, seen_pt_ids

    try:
        gold = load_docs(gold_path)
        pred_docs = system_docs(pred, gold, gpu_id=gpu_id)
        scores = evaluate_docs(gold, pred_docs, unit=unit, labels=labels)
        if compare:
            other = system_docs(compare, gold, gpu_id=gpu_id)
            scores["compare"] = {"system_a": pred, "system_b": compare, "b": evaluate_docs(gold, other, unit=unit, labels=labels)}
            scores["significance"] = compare_systems(gold, pred_docs, other, unit=unit, n_shuffles=n_shuffles, labels=labels)
        seen_pts = seen_pt_ids(d for path in seen for d in load_docs(path)) if seen else None
        scores["meddra"] = evaluate_meddra(gold, pred_docs, unit=unit, seen_pts=seen_pts, link_threshold=link_threshold)
        if linker:
            import spacy

            from ..pipeline.meddra_linker import find_linker, link_gold_mentions

            coded = link_gold_mentions(find_linker(spacy.load(linker)), gold)
            scores["meddra"]["gold_mentions_linker"] = {"linker": linker, **evaluate_meddra(gold, coded, unit=unit, seen_pts=seen_pts)["gold_mentions"]}
    except (FormatError, ValueError, OSError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"{len(gold)} docs, unit={unit}")
    typer.echo(format_table(scores))
    typer.echo("")
    typer.echo(format_meddra_table(scores["meddra"]))
    if linker:
        acc = scores["meddra"]["gold_mentions_linker"]
        typer.echo(f"--linker {linker} on the gold mentions: PT acc {acc['pt_acc']:.4f}  LLT acc {acc['llt_acc']:.4f}  (n={acc['n']})")
        if "unseen_pt_share" in acc:
            typer.echo(f"  PTs unseen in training: {acc['n_unseen_pt']} ({acc['unseen_pt_share']:.2%}), PT acc on them {acc['pt_acc_unseen']:.4f}; on seen PTs {acc['pt_acc_seen']:.4f}")
    if compare:
        typer.echo(f"\nvs {compare}:")
        typer.echo(format_table(scores["compare"]["b"]))
        typer.echo("\nsignificance (A - B micro F1):")
        for level, tests in scores["significance"].items():
            ar, bs = tests["approximate_randomization"], tests["paired_bootstrap"]
            typer.echo(f"  {level:<16} dF1 {ar['delta_f']:+.4f}  AR p={ar['p_value']:.4g}  bootstrap p={bs['p_value']:.4g}")
    if output:
        srsly.write_json(output, scores)
        typer.echo(f"scores: {output}")
