from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import typer

from ._util import DEFAULT_LLM_CONFIG, Arg, Opt, app

if TYPE_CHECKING:
    from spacy.language import Language

LLM_FACTORY = "llm"
CALIBRATOR_FACTORY = "clinie_confidence_calibrator"


@app.command("fit-gate")
def fit_gate_cli(
    model: str = Arg(..., help="The pipeline the corrector will run in: a folder (training/ade_cpu/model-best) or an installed package (en_clinie_ade)."),
    dev_path: Path = Arg(..., help="Held-out gold .spacy to fit on (corpus/dev.spacy). Never the test split.", exists=True, dir_okay=False),
    output: Path = Arg(..., help="Where to write the fitted gate (JSON); load it with the task's gate_path."),
    corrector: Optional[str] = Opt(
        None, "--corrector", help="The pipeline's llm component to fit the gate for (default: the first llm component with the clinie.ADECorrect.v2 task, if any)."
    ),
    llm_config: Optional[Path] = Opt(
        None,
        "--llm-config",
        help="A .cfg whose \\[model] block is any spacy-llm model (e.g. clinie.OpenAICompatible.v1 with base_url) and optional \\[task] block. "
        "Default: the corrector component's own model, else the local SmolLM2 GGUF.",
        exists=True,
        dir_okay=False,
    ),
    answers: Optional[Path] = Opt(
        None, "--answers", help="JSONL file that keeps the LLM's answers (default: OUTPUT with .answers.jsonl). Re-running the command resumes from it."
    ),
    demos: Optional[Path] = Opt(
        None, "--demos", help="Gold .spacy (the training split) to fill the task's demonstration pool, when the corrector has none.", exists=True, dir_okay=False
    ),
    n_demos: int = Opt(500, "--n-demos", help="How many demonstration sentences to take from --demos."),
    dictionary: Optional[Path] = Opt(
        None, "--dictionary", help="Gold .spacy (the training split) whose reaction strings feed the gate's 'known string' feature.", exists=True, dir_okay=False
    ),
    linker: Optional[str] = Opt(None, "--linker", help="A pipeline with a clinie_meddra_linker, for the gate's link-score feature (use the same at run time)."),
    calibration: Optional[Path] = Opt(
        None, "--calibration", help="Calibration maps (clinie calibrate --output) to add in front of the corrector when MODEL has no calibrator.", exists=True, dir_okay=False
    ),
    folds: int = Opt(5, "--folds", help="Folds over documents for the out-of-fold probabilities the threshold is chosen on."),
    c: float = Opt(1.0, "--c", help="Inverse L2 strength of the logistic acceptance model."),
    save: Optional[Path] = Opt(None, "--save", "-s", help="Also save MODEL with the fitted gate loaded into its corrector here."),
    batch_size: int = Opt(16, "--batch-size", "-b", help="Docs per batch when running the tagger."),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU for the tagger; -1 for CPU."),
    progress: bool = Opt(True, "--progress/--no-progress", help="Progress bars (stderr)."),
) -> None:
    """Fit the do-no-harm gate on LLM corrector edits on held-out gold.

    Runs the pipeline up to its corrector over DEV_PATH, asks the LLM about
    every unit the corrector would send it (answers are kept in --answers,
    so a killed run resumes), splits each answer into edits (add, drop,
    relabel, re-boundary) and labels them right or wrong against the gold.
    A logistic model then learns P(edit is right); its acceptance threshold
    is chosen on out-of-fold probabilities as the one that applies the most
    more right than wrong edits, or 1.0 (apply nothing) when none gains.
    With the default SmolLM2-135M on TAC dev that is 1.0: the small model's
    edits do not pay (benchmarks/RESULTS.md).
    """
    import spacy
    from spacy.training import Example
    from spacy.util import registry
    from tqdm import tqdm

    from ..candidates.dictionary import gold_reaction_strings
    from ..errors import FormatError
    from ..llm.gate import PipelineLinkScorer
    from ..llm.gate_fit import collect_answers, fit_gate
    from ..llm.tasks.ade_correct.task import ADECorrectTask
    from ..readers import load_docs, unannotated

    def fail(message: object) -> None:
        typer.secho(f"error: {message}", fg="red", err=True)
        raise typer.Exit(1)

    if folds < 2:
        raise typer.BadParameter(f"needs at least 2, got {folds}", param_hint="--folds")
    answers = answers or output.with_suffix(".answers.jsonl")
    try:
        if gpu_id >= 0:
            spacy.require_gpu(gpu_id)
        nlp = spacy.load(model)
        gold = load_docs(dev_path, nlp)
        name, task, model_cfg = find_corrector(nlp, corrector)
        if llm_config is not None or task is None:
            task, model_cfg = llm_from_config(llm_config, task, model_cfg)
        if not isinstance(task, ADECorrectTask) or task.gate is None:
            fail(f"the corrector's task ({type(task).__name__}) has no edit gate: use clinie.ADECorrect.v2")
        llm = registry.resolve({"model": model_cfg})["model"]
        if demos is not None:
            demo_docs = load_docs(demos, nlp)
            task.initialize(lambda: (Example(d, d) for d in demo_docs), n_demos=n_demos)
        if dictionary is not None:
            task.gate.dictionary = {s.lower() for d in load_docs(dictionary, nlp) for s in gold_reaction_strings(d)}
        if linker is not None:
            task.gate.link_scorer = PipelineLinkScorer(linker)
        before = pipes_before(nlp, name)
        if calibration is not None and not any(nlp.get_pipe_meta(n).factory == CALIBRATOR_FACTORY for n in before):
            add_calibrator(nlp, calibration, name)
            before = pipes_before(nlp, name)
    except (FormatError, ValueError, OSError) as err:
        fail(err)
    with nlp.select_pipes(enable=before):
        tagged = list(tqdm(nlp.pipe(unannotated(nlp, gold), batch_size=batch_size), total=len(gold), desc="tagging", unit="doc", disable=not progress, leave=False))
    if not any(d._.tag_entropy for d in tagged):
        fail(f"{model}: no doc._.tag_entropy after {before}: the corrector selects units by tag entropy (set the tagger's store_entropy = true)")
    units = sum(len(task.select(d)) for d in tagged)
    typer.echo(f"{len(tagged)} docs, {units} units above entropy {task.entropy_threshold} to ask the LLM about; answers kept in {answers}", err=True)
    with tqdm(total=len(tagged), desc="LLM answers", unit="doc", disable=not progress, leave=False) as bar:
        try:
            replies = collect_answers(task, llm, tagged, answers, progress=lambda n: bar.update(n - bar.n))
        except ValueError as err:
            fail(err)
    try:
        fitted = fit_gate(task, gold, tagged, replies, folds=folds, c=c)
    except ValueError as err:
        fail(err)
    task.gate.to_disk(output)
    report = fitted.report
    typer.echo(f"{report['n_edits']} edits on {len(gold)} docs, {report['n_right']} right")
    for row in report["threshold_selection"]:
        typer.echo(f"  threshold {row['threshold']:.2f}: {row['accepted']} accepted out of fold, {row['right']} right, net gain {row['net_gain']:+d}")
    if report["acceptance_threshold"] >= 1.0:
        typer.echo("acceptance threshold 1.0: no threshold gains on these edits, so the gate applies no edit (the corrector changes nothing).")
    else:
        typer.echo(f"acceptance threshold {report['acceptance_threshold']:.2f}")
    typer.echo(f"gate: {output}")
    if save is not None:
        if name is None:
            fail(f"--save needs a corrector component in {model} (none found)")
        own = nlp.get_pipe(name).task
        if getattr(own, "gate", None) is None:
            fail(f"--save: {name!r} runs a task without an edit gate; set its task to clinie.ADECorrect.v2")
        if own is not task:  # --llm-config gave its own [task]: the pipeline's task gets the fitted gate
            own.gate.from_dict(task.gate.to_dict(), where=str(output))
        if linker is not None and own.gate.link_scorer is None:
            typer.echo(f"note: the gate was fitted with link scores from {linker}, but {name!r} has no link_scorer; "
                       "set its task's link_scorer to clinie.MeddraLinkScorer.v1 with that pipeline, or the feature reads 0", err=True)
        nlp.to_disk(save)
        typer.echo(f"pipeline with the gate in {name!r}: {save}")


def find_corrector(nlp: "Language", name: Optional[str]) -> Tuple[Optional[str], Any, Any]:
    """The corrector component (name, task, model config): ``name`` or the
    first llm component whose task is the ADE corrector; (None, None, None)
    when the pipeline has none."""
    from ..llm.tasks.ade_correct.task import ADECorrectTask

    names = [n for n in nlp.component_names if nlp.get_pipe_meta(n).factory == LLM_FACTORY]
    if name is not None:
        if name not in names:
            raise ValueError(f"no llm component {name!r} in the pipeline (llm components: {names or 'none'})")
    else:
        name = next((n for n in names if isinstance(nlp.get_pipe(n).task, ADECorrectTask)), None)
        if name is None:
            return None, None, None
    return name, nlp.get_pipe(name).task, nlp.config["components"][name]["model"]


def llm_from_config(path: Optional[Path], task: Any, model_cfg: Any) -> Tuple[Any, Any]:
    """Task and model config from ``path`` over the defaults: its [model]
    replaces the model; its [task] (or, without a corrector component, the
    default gated task) replaces the task."""
    from spacy.util import registry
    from thinc.api import Config

    cfg = Config().from_str(DEFAULT_LLM_CONFIG)
    user = Config().from_disk(path, interpolate=False) if path is not None else Config()
    if path is not None and "model" not in user:
        raise ValueError(f"{path}: no [model] block")
    if "task" in user or task is None:
        task = registry.resolve({"task": user.get("task", cfg["task"])})["task"]
    return task, user.get("model", model_cfg if model_cfg is not None else cfg["model"])


def pipes_before(nlp: "Language", name: Optional[str]) -> List[str]:
    """The enabled components that run before ``name`` (all but llm
    components when there is no corrector): what the corrector sees."""
    names = nlp.pipe_names
    head = names[: names.index(name)] if name is not None and name in names else names
    if name is not None and name not in names:  # a disabled corrector: its position among all components
        order = nlp.component_names
        head = [n for n in order[: order.index(name)] if n in names]
    return [n for n in head if nlp.get_pipe_meta(n).factory != LLM_FACTORY]


def add_calibrator(nlp: "Language", maps: Path, corrector: Optional[str]) -> None:
    """A calibrator with the maps in ``maps``, in front of the corrector."""
    import srsly

    where = {"before": corrector} if corrector is not None else {"last": True}
    calibrator = nlp.add_pipe(CALIBRATOR_FACTORY, name="confidence_calibrator", **where)
    calibrator.set_calibration(srsly.read_json(maps))
