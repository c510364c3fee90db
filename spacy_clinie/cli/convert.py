from pathlib import Path

import typer

from ..errors import FormatError
from ..formats import FORMATS
from ._util import Arg, Opt, app


@app.command("convert")
def convert_cli(
    input_path: Path = Arg(..., help="Source file or folder. A folder holding train*/dev*/test* files (or folders for brat and TAC XML) gives one .spacy file per split.", exists=True),
    output_dir: Path = Arg(..., help="Folder for <split>.spacy and convert_report.json."),
    fmt: str = Opt("tac-onsides", "--format", "-f", help=f"Source format: {', '.join(FORMATS)}."),
    dev_fraction: float = Opt(0.1, "--dev-fraction", help="Share of the train split's drug labels held out as dev.spacy (0 to keep all)."),
    seed: int = Opt(0, "--seed", help="Seed for the dev split."),
    discontiguous: str = Opt("merge", "--discontiguous", help="merge: one span from first to last fragment, exact fragments kept in span._.fragments; skip: leave them out (listed in the report)."),
    no_projection: bool = Opt(False, "--no-projection", help="TAC OnSIDES only: keep only the annotated first occurrences instead of projecting each string onto all its occurrences."),
    strict: bool = Opt(False, "--strict", help="Stop at the first bad record instead of skipping and reporting it."),
) -> None:
    """Convert an annotated corpus to .spacy files and print its statistics.

    Every mention, relation and MedDRA normalisation is kept; what cannot be
    placed (bad offsets, discontiguous mentions under --discontiguous skip) is
    listed with file, record and reason in convert_report.json.

    Example: clinie convert ../shared/corpus/tac2017_adr corpus/
    """
    from ..convert import convert, format_report

    try:
        result = convert(
            input_path,
            output_dir,
            fmt,
            dev_fraction=dev_fraction,
            seed=seed,
            strict=strict,
            discontiguous=discontiguous,
            project=not no_projection,
            progress=lambda msg: typer.echo(msg, err=True),
        )
    except (FormatError, ValueError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(format_report(result))
    typer.echo(f"report: {Path(output_dir) / 'convert_report.json'}")
