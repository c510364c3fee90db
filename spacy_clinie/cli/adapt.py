from pathlib import Path
from typing import Optional

import typer

from ._util import DEFAULT_LLM_CONFIG, Arg, Opt, app


@app.command("adapt")
def adapt_cli(
    model: Path = Arg(..., help="The trained tagger pipeline to adapt (e.g. training/ade_cpu/model-best).", exists=True),
    target: Path = Arg(..., help="Unlabelled target-site text: .spacy (annotations ignored), .jsonl with a 'text' field, or a folder of .txt files.", exists=True),
    output: Path = Arg(..., help="Run folder: state.json and iter_N/model checkpoints. Re-running the same command resumes."),
    llm_config: Optional[Path] = Opt(
        None,
        "--llm-config",
        help="A .cfg whose \\[model] block is any spacy-llm model (e.g. clinie.OpenAICompatible.v1 with base_url) and optional \\[task] block sets the task (clinie.ADECorrect.v2, gated; v1 is ungated). Default: the local SmolLM2 GGUF.",
        exists=True,
    ),
    gate: Optional[Path] = Opt(
        None,
        "--gate",
        help="A fitted edit gate (clinie fit-gate): only the LLM edits it judges more likely right than wrong train the tagger. Without it every edit applies (ungated).",
        exists=True,
        dir_okay=False,
    ),
    gold: Optional[Path] = Opt(None, "--gold", help="Gold .spacy of the target texts (same order) to report F1 after each iteration.", exists=True),
    score_on: Optional[Path] = Opt(
        None,
        "--score-on",
        help="A labelled .spacy corpus from the target site other than TARGET (e.g. its held-out split), scored after every iteration; predictions are kept as OUTPUT/iter_N/pred_held_out.spacy.",
        exists=True,
    ),
    k: int = Opt(256, "--k", help="Annotation budget: the K most uncertain sentence units (on the TAC section shift, 64 gold-annotated units lowered dev F1 and 256 raised it; benchmarks/RESULTS.md)."),
    ratio: float = Opt(0.1, "--ratio", help="R: the lowest-entropy share of each class that seeds the demo pool."),
    tau: float = Opt(0.05, "--tau", help="Per-token loss below which an LLM annotation counts as clean."),
    n_iter: int = Opt(2, "--n-iter", help="Maximum SALA iterations."),
    epochs: int = Opt(3, "--epochs", help="Fine-tuning epochs over the LLM annotations per iteration."),
    learn_rate: float = Opt(2e-5, "--learn-rate", help="Constant learning rate for fine-tuning, with the optimiser of the pipeline's training config."),
    batch_size: int = Opt(8, "--batch-size", help="Units per fine-tuning step."),
    rehearsal: float = Opt(1.0, "--rehearsal", help="Also fine-tune on this many x K of the most confident pseudo-labelled units, against forgetting (0: seed 001 as published)."),
    max_docs: int = Opt(0, "--max-docs", help="Use only the first N target docs (0: all)."),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU for the tagger; -1 for CPU."),
    progress: bool = Opt(True, "--progress/--no-progress", help="Progress bars (stderr)."),
) -> None:
    """Adapt the tagger to a new site with a local LLM (seed 001's SALA).

    The tagger pseudo-labels the target texts; its K most uncertain
    sentences go to the LLM, which corrects the tagger's prediction with one
    confident demonstration per class; the tagger is fine-tuned on the
    corrections, and those it fits (loss < tau) become the next
    demonstrations. Data never leaves the machine unless --llm-config points
    at a remote server. A killed run resumes from OUTPUT/state.json.
    """
    import spacy
    from spacy.util import registry
    from thinc.api import Config
    from tqdm import tqdm

    from ..readers import load_docs
    from ..errors import FormatError
    from ..llm.adapt import SalaRun, load_target_texts

    def fail(message: object) -> None:
        typer.secho(f"error: {message}", fg="red", err=True)
        raise typer.Exit(1)

    # every input is checked before anything heavy (the LLM, the tagger) loads
    vocab_nlp = spacy.blank("en")
    try:
        texts = load_target_texts(target, vocab_nlp)
        gold_docs = load_docs(gold, vocab_nlp) if gold is not None else None
        held_out = load_docs(score_on, vocab_nlp) if score_on is not None else None
    except (FormatError, OSError) as err:
        fail(err)
    try:
        user = Config().from_disk(llm_config, interpolate=False) if llm_config is not None else None
    except (ValueError, OSError) as err:
        fail(f"{llm_config}: not a readable config ({str(err).strip()})")
    if max_docs:
        texts = texts[:max_docs]
        gold_docs = gold_docs[:max_docs] if gold_docs else None
    if gold_docs is not None and [d.text for d in gold_docs] != texts:
        raise typer.BadParameter(f"{gold}: its texts differ from {target} (same docs, same order needed)", param_hint="--gold")
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    cfg = Config().from_str(DEFAULT_LLM_CONFIG)
    if user is not None:
        if "model" not in user:
            raise typer.BadParameter(f"{llm_config}: no [model] block", param_hint="--llm-config")
        cfg["model"] = user["model"]
        if "task" in user:
            cfg["task"] = user["task"]
    if gate is not None:
        if "ADECorrect.v2" not in str(cfg["task"].get("@llm_tasks")):
            raise typer.BadParameter("--gate needs the clinie.ADECorrect.v2 task (the --llm-config [task] block names another)", param_hint="--gate")
        cfg["task"]["gate_path"] = str(gate)
    elif "ADECorrect.v2" in str(cfg["task"].get("@llm_tasks")) and not cfg["task"].get("gate_path"):
        cfg["task"]["gate_mode"] = "off"  # ungated on purpose: the note below says so once
    try:
        resolved = registry.resolve(cfg)
    except (ValueError, OSError) as err:  # e.g. a gate file of another version
        fail(err)
    if user is None:
        typer.echo(
            "note: the default LLM is SmolLM2-135M. On the TAC section shift its annotations (F1 0.30, 0.46 after the gate) lowered "
            "target F1; adaptation paid off only with annotators above about 0.67 F1 (benchmarks/RESULTS.md). Use --llm-config for a stronger model.",
            err=True,
        )
    task_gate = getattr(resolved["task"], "gate", None)
    if task_gate is None or not task_gate.active:
        typer.echo("note: no fitted --gate; every LLM edit trains the tagger (ungated). With a small LLM that loses recall (benchmarks/RESULTS.md).", err=True)

    def bar(desc: str, total: int):
        return tqdm(total=total, desc=desc, unit="unit" if "LLM" in desc or "tuning" in desc else "doc", disable=not progress, leave=False)

    try:
        run = SalaRun(
            model,
            texts,
            output,
            task=resolved["task"],
            llm=resolved["model"],
            k=k,
            ratio=ratio,
            tau=tau,
            n_iter=n_iter,
            epochs=epochs,
            learn_rate=learn_rate,
            batch_size=batch_size,
            rehearsal=rehearsal,
            gold=gold_docs,
            eval_sets={"held_out": held_out} if held_out else None,
            progress=bar,
            log=lambda m: typer.echo(m, err=True),
        )
    except FormatError as err:  # e.g. a damaged OUTPUT/state.json
        fail(err)
    state = run.run()
    for h in state["history"]:
        typer.echo(f"iteration {h['iteration']}: {h.get('scores')}")
    typer.echo(f"adapted model: {output / ('iter_%d' % state['finetuned']) / 'model' if state['finetuned'] else model}")
