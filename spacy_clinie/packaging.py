"""Assemble the deployable ``en_clinie_ade`` pipeline and put its test
scores into ``meta.json``, ready for ``spacy package``.

``spacy assemble`` initialises only the enabled components, but the packaged
pipeline ships some switched off (``[nlp] disabled``: the relation linker
until a corpus with relations trains it), and those must still be
initialised to be saved and enabled later with ``nlp.enable_pipe``. So this
does what ``spacy assemble`` does, with the disabled, non-sourced components
initialised too. ``clinie package`` (cli/package.py) is the command:

    clinie package configs/en_clinie_ade.cfg training/en_clinie_ade \\
        --score-on corpus/test.spacy --labels AdverseReaction \\
        --paths.tagger training/ade_cpu/model-best

``--score-on`` runs the saved pipeline, every enabled component, over a gold
split, so that meta.json describes what a user loads rather than the tagger
it was built from (the verifier and the calibrator change its output).
"""

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import srsly
from spacy import util
from spacy.cli.package import generate_readme
from spacy.language import Language
from spacy.training.initialize import get_sourced_components

from .readers import load_docs, system_docs
from .scoring import evaluate_docs
from .scoring.meddra import evaluate_meddra

# levels of a metrics file copied as flat micro P/R/F into meta["performance"]
# (what spaCy's package README table shows); the whole file goes under
# performance["evaluation"][<file stem>]. A level the evaluated system made
# no prediction for (n_pred == 0: e.g. PT codes when only the tagger was
# scored) or that has no gold (n_gold == 0: TAC has no drug-ADE relations) is
# left out of the headline, not reported as F1 0.
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


def performance(
    metrics: Iterable[Union[str, Path]], scores: Optional[Dict[str, Dict[str, Any]]] = None
) -> Dict[str, Any]:
    """Flat ``<level>_p/_r/_f`` scores from ``clinie evaluate --output``
    files and from named ``scores`` (same shape), plus each of them in full
    under ``evaluation``. Where two give the same level, the later one wins
    (even with no predictions there: the level then leaves the headline),
    and ``scores`` come after the files."""
    named: Dict[str, Any] = {}
    for path in metrics:
        path = Path(path)
        try:
            named[path.stem] = srsly.read_json(path)
        except ValueError as err:
            raise ValueError(f"{path}: not a JSON metrics file ({err})") from err
    named.update(scores or {})
    out: Dict[str, Any] = {}
    evaluation: Dict[str, Any] = {}
    for name, data in named.items():
        evaluation[name] = data
        for level in HEADLINE:
            micro = (data.get(level) or {}).get("micro") if isinstance(data, dict) else None
            if not isinstance(micro, dict):
                continue
            unscored = micro.get("n_pred") == 0 or micro.get("n_gold") == 0
            for score in ("p", "r", "f"):
                # a later system that predicted nothing at this level must not
                # leave an earlier system's scores standing in the headline
                out.pop(f"{level}_{score}", None)
                if not unscored and isinstance(micro.get(score), (int, float)):
                    out[f"{level}_{score}"] = micro[score]
    out["evaluation"] = evaluation
    return out


def write_meta(
    model_dir: Union[str, Path],
    metrics: List[Union[str, Path]],
    scores: Optional[Dict[str, Dict[str, Any]]] = None,
    **fields: Any,
) -> Dict[str, Any]:
    """Merge the scores (and ``fields`` such as name, version, description)
    into ``model_dir/meta.json`` and write the matching ``README.md`` there;
    ``spacy package`` carries both into the package. (Without a README in
    ``model_dir``, ``spacy package --force`` keeps the one it generated on
    its last run, with that run's scores.)"""
    path = Path(model_dir) / "meta.json"
    meta = srsly.read_json(path)
    meta.update({k: v for k, v in fields.items() if v is not None})
    if metrics or scores:
        meta["performance"] = {**(meta.get("performance") or {}), **performance(metrics, scores)}
    srsly.write_json(path, meta)
    (Path(model_dir) / "README.md").write_text(generate_readme(meta), encoding="utf8")
    return meta


def score_pipeline(
    model: Union[str, Path],
    gold_path: Union[str, Path],
    *,
    labels: Optional[Iterable[str]] = None,
    gpu_id: int = -1,
) -> Dict[str, Any]:
    """TAC-style and MedDRA scores of the pipeline saved at ``model``, every
    enabled component, run over the texts of ``gold_path``: the same
    numbers ``clinie evaluate GOLD MODEL --labels ...`` prints."""
    gold = load_docs(gold_path)
    preds = system_docs(str(model), gold, gpu_id=gpu_id)
    scores = evaluate_docs(gold, preds, labels=labels)
    scores["meddra"] = evaluate_meddra(gold, preds)
    scores["system"] = {"pipeline": str(model), "gold": str(gold_path), "labels": sorted(labels) if labels else None}
    return scores


def package(
    config_path: Union[str, Path],
    output: Union[str, Path],
    metrics: Iterable[Union[str, Path]] = (),
    overrides: Optional[Dict[str, Any]] = None,
    *,
    score_on: Optional[Union[str, Path]] = None,
    score_labels: Optional[Iterable[str]] = None,
    score_output: Optional[Union[str, Path]] = None,
    gpu_id: int = -1,
    **fields: Any,
) -> Tuple[Language, Dict[str, Any]]:
    """Assemble ``config_path`` into ``output`` and merge the ``metrics``
    files' scores and ``fields`` (name, version, description) into its
    meta.json. With ``score_on`` (a gold .spacy split), the saved pipeline
    is scored on it and those scores lead meta.json's headline (also written
    to ``score_output``). A missing input file is an error before any work."""
    metrics = [Path(p) for p in metrics]
    for path in metrics:
        if not path.exists():
            raise ValueError(f"{path}: no such metrics file")
    if score_on is not None and not Path(score_on).exists():
        raise ValueError(f"{score_on}: no such gold file to score the pipeline on")
    nlp = assemble(config_path, overrides)
    nlp.to_disk(output)
    scores = None
    if score_on is not None:
        pipeline_scores = score_pipeline(output, score_on, labels=score_labels, gpu_id=gpu_id)
        if score_output is not None:
            Path(score_output).parent.mkdir(parents=True, exist_ok=True)
            srsly.write_json(score_output, pipeline_scores)
        scores = {Path(score_output).stem if score_output else "pipeline": pipeline_scores}
    meta = write_meta(output, metrics, scores, **fields)
    return nlp, meta
