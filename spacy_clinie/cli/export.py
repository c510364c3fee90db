from pathlib import Path

import typer

from ..errors import FormatError
from ._util import Arg, Opt, app

EXPORT_FORMATS = ("tac-xml", "brat")


@app.command("export")
def export_cli(
    input_path: Path = Arg(..., help="A .spacy file (gold or predictions).", exists=True, dir_okay=False),
    output_dir: Path = Arg(..., help="Folder to write into."),
    fmt: str = Opt("tac-xml", "--format", "-f", help="tac-xml: one <Label> file per drug label; brat: .txt/.ann per doc."),
    spans_key: str = Opt("mentions", "--spans-key", help="doc.spans key holding the mentions."),
) -> None:
    """Export docs as TAC 2017 XML or brat standoff, for the tracks' official
    evaluation scripts."""
    from ..readers import load_docs
    from ..readers import write_brat, write_tac_xml

    try:
        docs = load_docs(input_path)
    except FormatError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    if fmt == "tac-xml":
        paths = write_tac_xml(docs, output_dir, spans_key=spans_key)
    elif fmt == "brat":
        paths = write_brat(docs, output_dir, spans_key=spans_key)
    else:
        typer.secho(f"error: unknown format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"wrote {len(paths)} file(s) from {len(docs)} doc(s) to {output_dir}")
