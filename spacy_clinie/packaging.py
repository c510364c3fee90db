"""Assemble the deployable ``en_clinie_ade`` pipeline and put its test
scores into ``meta.json``, ready for ``spacy package``.

``spacy assemble`` initialises only the enabled components, but the packaged
pipeline ships some switched off (``[nlp] disabled``: the relation linker
until a corpus with relations trains it), and those must still be
initialised to be saved and enabled later with ``nlp.enable_pipe``. So this
does what ``spacy assemble`` does, with the disabled, non-sourced components
initialised too. ``clinie package`` (cli/package.py) is the command:

    clinie package configs/en_clinie_ade.cfg training/en_clinie_ade \\
        --metrics metrics/ade_cpu_test.json --paths.tagger training/ade_cpu/model-best
"""

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import srsly
from spacy import util
from spacy.language import Language
from spacy.training.initialize import get_sourced_components

# levels of a metrics file copied as flat micro P/R/F into meta["performance"]
# (what spaCy's package README table shows); the whole file goes under
# performance["evaluation"][<file stem>]. A level the evaluated system made
# no prediction for (n_pred == 0: e.g. PT codes when only the tagger was
# scored) is left out of the headline, not reported as F1 0.
HEADLINE = ("mention_strict", "mention_relaxed", "reaction", "pt", "relation")


def assemble(config_path: Union[str, Path], overrides: Optional[Dict[str, Any]] = None) -> Language:
    """Build and initialise the pipeline of ``config_path``; sourced
    components are taken as trained, disabled ones are initialised too."""
    config = util.load_config(config_path, overrides=overrides or {}, interpolate=False)
    nlp = util.load_model_from_config(config, auto_fill=True)
    sourced = get_sourced_components(config.interpolate())
    disabled = list(nlp.disabled)
    for name in disabled:
        nlp.enable_pipe(name)
    nlp._link_components()
    with nlp.select_pipes(disable=[*sourced]):
        nlp.initialize()
    for name in disabled:
        nlp.disable_pipe(name)
    return nlp


def performance(metrics: Iterable[Union[str, Path]]) -> Dict[str, Any]:
    """Flat ``<level>_p/_r/_f`` scores from ``clinie evaluate --output``
    files, plus every file in full under ``evaluation``."""
    out: Dict[str, Any] = {}
    evaluation: Dict[str, Any] = {}
    for path in metrics:
        path = Path(path)
        try:
            data = srsly.read_json(path)
        except ValueError as err:
            raise ValueError(f"{path}: not a JSON metrics file ({err})") from err
        evaluation[path.stem] = data
        for level in HEADLINE:
            micro = (data.get(level) or {}).get("micro") if isinstance(data, dict) else None
            if isinstance(micro, dict) and micro.get("n_pred") != 0:
                for score in ("p", "r", "f"):
                    if isinstance(micro.get(score), (int, float)):
                        out[f"{level}_{score}"] = micro[score]
    out["evaluation"] = evaluation
    return out


def write_meta(model_dir: Union[str, Path], metrics: List[Union[str, Path]], **fields: Any) -> Dict[str, Any]:
    """Merge the scores (and ``fields`` such as name, version, description)
    into ``model_dir/meta.json``; ``spacy package`` carries it into the
    package."""
    path = Path(model_dir) / "meta.json"
    meta = srsly.read_json(path)
    meta.update({k: v for k, v in fields.items() if v is not None})
    if metrics:
        meta["performance"] = {**(meta.get("performance") or {}), **performance(metrics)}
    srsly.write_json(path, meta)
    return meta


def package(
    config_path: Union[str, Path],
    output: Union[str, Path],
    metrics: Iterable[Union[str, Path]] = (),
    overrides: Optional[Dict[str, Any]] = None,
    **fields: Any,
) -> Tuple[Language, Dict[str, Any]]:
    """Assemble ``config_path`` into ``output`` and merge the ``metrics``
    files' scores and ``fields`` (name, version, description) into its
    meta.json. A missing metrics file is an error before any work."""
    metrics = [Path(p) for p in metrics]
    for path in metrics:
        if not path.exists():
            raise ValueError(f"{path}: no such metrics file")
    nlp = assemble(config_path, overrides)
    nlp.to_disk(output)
    meta = write_meta(output, metrics, **fields)
    return nlp, meta
