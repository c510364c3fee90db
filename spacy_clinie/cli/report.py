from pathlib import Path
from typing import Optional

import typer

from ._util import Arg, Opt, app


@app.command("report")
def report_cli(
    output: Path = Arg(
        ..., help="What `clinie pipe` wrote: its JSONL file, or its --format table / fhir folder.", exists=True
    ),
    html_path: Optional[Path] = Opt(
        None, "--html", "-o", help="Report file (default: OUTPUT.report.html beside a file, report.html in a folder)."
    ),
    png: Optional[Path] = Opt(
        None, "--png", help="Also write each figure as a PNG into this folder (kaleido + local Chromium)."
    ),
    quarantine: Optional[Path] = Opt(
        None, "--quarantine", help="The run's quarantine file, if `clinie pipe --quarantine` put it elsewhere."
    ),
) -> None:
    """Summarise a `clinie pipe` run in one self-contained HTML page: counts
    per MedDRA SOC and the top PTs, the confidence histogram, the share of
    negated and hypothetical reactions, a breakdown by section (or suspect
    drug), the quarantine reasons, and the run's throughput and peak memory.
    The page embeds Plotly, so it opens offline and can be sent on."""
    from ..batch.report import write_report

    if html_path is None:
        html_path = output / "report.html" if output.is_dir() else output.with_name(output.name + ".report.html")
    try:
        data, pngs = write_report(output, html_path, png_dir=png, quarantine=quarantine)
    except (ValueError, OSError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(f"{html_path}: {len(data.rows)} reactions, {len(data.quarantine)} quarantined")
    for note in data.notes:
        typer.echo(f"note: {note}")
    for path in pngs:
        typer.echo(f"figure: {path}")
