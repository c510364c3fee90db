import json
from pathlib import Path
from typing import List, Optional

import typer

from ._util import Arg, Opt, app


@app.command(
    "package",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def package_cli(
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Pipeline config (configs/en_clinie_ade.cfg).", exists=True, dir_okay=False),
    output: Path = Arg(..., help="Folder to write the assembled pipeline into (then: python -m spacy package OUTPUT packages/)."),
    metrics: Optional[List[Path]] = Opt(None, "--metrics", "-m", help="A `clinie evaluate --output` JSON file whose scores go into meta.json (repeatable)."),
    score_on: Optional[Path] = Opt(None, "--score-on", help="A gold .spacy split (corpus/test.spacy): run the saved pipeline, every enabled component, over it and put those scores at the head of meta.json's performance."),
    score_labels: Optional[List[str]] = Opt(None, "--labels", "-l", help="With --score-on: score only these mention types (repeatable), e.g. AdverseReaction on TAC, which does not annotate Drug mentions."),
    score_output: Optional[Path] = Opt(None, "--score-output", help="With --score-on: also write the scores as JSON here (the same content as `clinie evaluate --output`)."),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="With --score-on: GPU to run the pipeline on; -1 for CPU."),
    name: str = Opt("clinie_ade", "--name", help="Package name in meta.json (spaCy prefixes the language: en_clinie_ade)."),
    version: Optional[str] = Opt(None, "--version", help="Package version in meta.json."),
    description: str = Opt("spacy-clinie ADE pipeline", "--description", help="Package description in meta.json."),
) -> None:
    """Assemble the deployable pipeline of CONFIG_PATH into OUTPUT, ready for
    `spacy package`, with the test scores in meta.json.

    Give --score-on so that those scores are the assembled pipeline's own
    (tagger, verifier, linker and all), not only the tagger's --metrics.

    Like `spacy assemble`, but the components the config ships switched off
    (the nlp section's `disabled` list, e.g. the relation linker) are
    initialised too, so that they are saved and can be enabled later. Extra
    options override the config, as with spaCy's commands:
    --paths.tagger training/ade_cpu/model-best.

    Example: clinie package configs/en_clinie_ade.cfg training/en_clinie_ade
    --score-on corpus/test.spacy --labels AdverseReaction
    --paths.tagger training/ade_cpu/model-best
    """
    from spacy.cli._util import parse_config_overrides

    from ..packaging import package

    try:
        nlp, meta = package(
            config_path,
            output,
            metrics or [],
            parse_config_overrides(ctx.args),
            score_on=score_on,
            score_labels=score_labels or None,
            score_output=score_output,
            gpu_id=gpu_id,
            name=name,
            version=version,
            description=description,
        )
    except (ValueError, OSError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    scores = {k: round(v, 4) for k, v in meta.get("performance", {}).items() if isinstance(v, float)}
    typer.echo(f"assembled {nlp.pipe_names} (disabled: {list(nlp.disabled)}) into {output}")
    typer.echo(f"meta performance: {json.dumps(scores)}")
