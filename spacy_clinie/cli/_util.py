"""The ``clinie`` Typer app and shared option helpers (cf. spacy/cli/_util.py)."""
import typer

app = typer.Typer(
    name="clinie",
    help=(
        "spacy-clinie: adverse drug event extraction with spaCy.\n\n"
        "Convert annotated corpora (TAC 2017 ADR, brat/n2c2, EU-ADR) to .spacy files, "
        "evaluate predictions TAC-style, and export them for the official scripts. "
        "Run 'clinie COMMAND --help' for each command."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

Arg = typer.Argument
Opt = typer.Option

# the corrector a command builds when --llm-config does not replace it: the
# gated ADE task (seed 001) on the local SmolLM2-135M
DEFAULT_LLM_CONFIG = """
[task]
@llm_tasks = "clinie.ADECorrect.v2"

[task.demos]
@llm_misc = "clinie.DemoPool.v1"

[task.demos.encoder]
@misc = "clinie.SentenceEncoder.v1"

[model]
@llm_models = "clinie.LlamaCpp.v1"
"""
