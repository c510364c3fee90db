from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import srsly
import typer

from ..errors import FormatError
from ._util import Arg, Opt, app

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc

CALIBRATOR_FACTORY = "clinie_confidence_calibrator"


@app.command("calibrate")
def calibrate_cli(
    model: str = Arg(..., help="Trained pipeline: a folder (training/ade_cpu/model-best) or an installed package."),
    dev_path: Path = Arg(..., help="Held-out gold .spacy file to fit on (corpus/dev.spacy). Never the test split.", exists=True, dir_okay=False),
    predictions: Optional[Path] = Opt(None, "--predictions", "-p", help="MODEL's predictions on DEV_PATH as .spacy, to skip running MODEL again.", exists=True, dir_okay=False),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Write the fitted maps as JSON (load them with [initialize.components.<name>] calibration = FILE)."),
    save: Optional[Path] = Opt(None, "--save", "-s", help="Save MODEL with a fitted clinie_confidence_calibrator as the last component here."),
    name: str = Opt("confidence_calibrator", "--name", help="Component name in the saved pipeline."),
    batch_size: int = Opt(16, "--batch-size", "-b", help="Docs per batch when running MODEL."),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU to run MODEL on; -1 for CPU."),
) -> None:
    """Fit calibrated confidences on held-out data.

    Runs MODEL on DEV_PATH (with any calibrator it already has switched off),
    fits isotonic maps from the raw mention confidence to the chance that the
    mention is exactly right, and from a reaction's best mention score to the
    chance that the reaction string is gold, and prints the expected
    calibration error (ECE) before and after on DEV_PATH. --save writes the
    pipeline with the calibrator added; span._.attributes["confidence"] is
    then a probability, and the producer's score stays in "confidence_raw".
    """
    import spacy

    from ..readers import load_docs
    from ..pipeline.calibrator import describe

    if output is None and save is None:
        typer.secho("error: give --output FILE and/or --save DIR", fg="red", err=True)
        raise typer.Exit(1)
    try:
        if gpu_id >= 0:
            spacy.require_gpu(gpu_id)
        nlp = spacy.load(model)
        existing = [n for n in nlp.component_names if nlp.get_pipe_meta(n).factory == CALIBRATOR_FACTORY]
        gold = load_docs(dev_path)
        if predictions is not None:
            pred = load_docs(predictions)
        else:
            with nlp.select_pipes(disable=[n for n in existing if n in nlp.pipe_names]):
                pred = _run(nlp, gold, batch_size)
        if existing:
            calibrator = nlp.get_pipe(existing[0])
        else:
            calibrator = nlp.add_pipe(CALIBRATOR_FACTORY, name=name, last=True)
        data = calibrator.fit(gold, pred)
    except (FormatError, ValueError, OSError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(1)
    typer.echo(describe(data))
    if output is not None:
        srsly.write_json(output, data)
        typer.echo(f"maps: {output}")
    if save is not None:
        nlp.to_disk(save)
        typer.echo(f"pipeline with {calibrator.name!r}: {save}")


def _run(nlp: "Language", gold: List["Doc"], batch_size: int) -> List["Doc"]:
    """MODEL's predictions on the gold texts (metadata kept, annotations not)."""
    from tqdm import tqdm

    from ..readers import unannotated

    docs = nlp.pipe(unannotated(nlp, gold), batch_size=batch_size)
    return list(tqdm(docs, total=len(gold), desc="predicting dev", unit="doc"))
