from typing import Dict, List, Optional

from spacy_llm.registry import registry

from ...demos import DemoPool, load_demos
from ...gate import EditGate, LinkScorer, PipelineLinkScorer, load_gate_data
from .task import ADECorrectTask

DEFAULT_DESCRIPTION = (
    "The text comes from a drug label or a clinical note. An AdverseReaction is a sign, symptom, "
    "disease or abnormal finding that the text reports as caused by the drug, e.g. \"nausea\", "
    "\"hepatotoxicity\", \"QT prolongation\". Do not mark the drug, the indication, or severity words on their own."
)
DEFAULT_DEFINITIONS = {"AdverseReaction": "an undesired effect of the drug, as written in the text"}


@registry.llm_misc("clinie.DemoPool.v1")
def make_demo_pool(path: Optional[str] = None, encoder: Optional[object] = None) -> DemoPool:
    """Demonstrations ``{"text", "entities": [[text, label], ...]}`` from a
    JSONL file (or none; ``clinie adapt`` and ``initialize(n_demos=...)``
    fill it). ``encoder``: e.g. ``clinie.SentenceEncoder.v1`` for retrieval
    by similarity; without one, the most confident example per class."""
    return DemoPool(load_demos(path) if path else [], encoder=encoder)


@registry.llm_misc("clinie.MeddraLinkScorer.v1")
def make_meddra_link_scorer(pipeline: str, component: str = "meddra_linker") -> LinkScorer:
    """Link scores for the edit gate from a saved pipeline's MedDRA linker
    (e.g. a packaged en_clinie_ade), loaded on first use."""
    return PipelineLinkScorer(pipeline, component)


@registry.llm_tasks("clinie.ADECorrect.v1")
def make_ade_correct_task(
    labels: List[str] = ["AdverseReaction"],  # noqa: B006 (spaCy config default, copied)
    description: str = DEFAULT_DESCRIPTION,
    label_definitions: Dict[str, str] = DEFAULT_DEFINITIONS,
    template: Optional[str] = None,
    system_template: str = "system.v1.jinja",
    output_format: str = "json",
    spans_key: str = "mentions",
    entropy_threshold: float = 0.05,
    max_unit_tokens: int = 64,
    max_units_per_doc: int = 0,
    demos: Optional[DemoPool] = None,
    label_synonyms: Optional[Dict[str, List[str]]] = None,
    constrain: bool = True,
    max_ngram: int = 6,
    max_candidates: int = 300,
) -> ADECorrectTask:
    """Seed 001's LLM correction of the tagger's uncertain sentences.

    output_format: "json" ({entity: type} lines, seed 001) or "index"
        (``<Index> : <Token> : <Label>``, seed 002).
    template: a shipped template name or a path to your own .jinja file;
        default ade_correct.v1.jinja (json) / ade_index.v1.jinja (index).
    entropy_threshold: mean token entropy (nats) above which a sentence is
        sent to the LLM; docs without ``doc._.tag_entropy`` send every one.
    constrain: attach a JSON schema (keys = the sentence's n-grams, values =
        labels) or a GBNF grammar for backends that decode under constraints.
    """
    from ...resolver import DEFAULT_SYNONYMS

    return ADECorrectTask(
        labels=labels,
        description=description,
        label_definitions=label_definitions,
        template=template or ("ade_index.v1.jinja" if output_format == "index" else "ade_correct.v1.jinja"),
        system_template=system_template,
        output_format=output_format,
        spans_key=spans_key,
        entropy_threshold=entropy_threshold,
        max_unit_tokens=max_unit_tokens,
        max_units_per_doc=max_units_per_doc,
        demos=demos if demos is not None else DemoPool(),
        label_synonyms=label_synonyms if label_synonyms is not None else DEFAULT_SYNONYMS,
        constrain=constrain,
        max_ngram=max_ngram,
        max_candidates=max_candidates,
    )


@registry.llm_tasks("clinie.ADECorrect.v2")
def make_ade_correct_task_v2(
    labels: List[str] = ["AdverseReaction"],  # noqa: B006 (spaCy config default, copied)
    description: str = DEFAULT_DESCRIPTION,
    label_definitions: Dict[str, str] = DEFAULT_DEFINITIONS,
    template: Optional[str] = None,
    system_template: str = "system.v1.jinja",
    output_format: str = "json",
    spans_key: str = "mentions",
    entropy_threshold: float = 0.05,
    max_unit_tokens: int = 64,
    max_units_per_doc: int = 0,
    demos: Optional[DemoPool] = None,
    label_synonyms: Optional[Dict[str, List[str]]] = None,
    constrain: bool = True,
    max_ngram: int = 6,
    max_candidates: int = 300,
    gate_mode: str = "on",
    gate_threshold: float = 0.5,
    gate_path: Optional[str] = None,
    link_scorer: Optional[LinkScorer] = None,
) -> ADECorrectTask:
    """v1 plus the do-no-harm gate (issue 20): each answer is split into
    edits (add, drop, relabel, re-boundary) and only those the fitted
    acceptance model gives P(right) > ``gate_threshold`` apply.

    gate_mode: "on" (default) or "off" (every edit applies: the ungated
        corrector, as v1).
    gate_threshold: the acceptance threshold of a gate without a file; a
        fitted gate file carries the threshold chosen on dev (1.0, apply
        nothing, when no threshold gained there), which takes precedence.
    gate_path: a fitted gate file (``clinie fit-gate``);
        it can also come with ``initialize(gate_path=...)`` or a saved
        pipeline. An unfitted gate applies every edit.
    link_scorer: e.g. ``clinie.MeddraLinkScorer.v1`` for the link-score
        feature; fit and use the gate with the same scorer (0.0 without)."""
    task = make_ade_correct_task(
        labels=labels, description=description, label_definitions=label_definitions, template=template,
        system_template=system_template, output_format=output_format, spans_key=spans_key,
        entropy_threshold=entropy_threshold, max_unit_tokens=max_unit_tokens, max_units_per_doc=max_units_per_doc,
        demos=demos, label_synonyms=label_synonyms, constrain=constrain, max_ngram=max_ngram, max_candidates=max_candidates,
    )
    task.gate = EditGate(mode=gate_mode, threshold=gate_threshold, link_scorer=link_scorer)
    if gate_path:
        data, where = load_gate_data(gate_path)
        task.gate.from_dict(data, where=where)
    return task
