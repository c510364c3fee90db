"""Scoring, TAC-style (cf. the tracks' official scripts).

- ``tac``: mention (strict / relaxed), reaction, PT and relation levels per
  evaluation unit, significance tests, and ``clinie.mention_scorer.v1``;
- ``meddra``: MedDRA coding accuracy, mention + PT and LINK scores, and
  ``clinie.meddra_scorer.v1``;
- ``calibration``: confidence outcomes, ECE and reliability bins;
- ``components``: the scorers the relation linker, ensemble and sentence
  filter name in their configs.

The names of ``tac`` are re-exported here (``from spacy_clinie.scoring
import evaluate_docs``); importing the package registers every scorer.
"""
from . import components, meddra  # noqa: F401  (registry entries)
from .tac import (
    ADR_LABEL,
    LEVELS,
    MICRO,
    Counts,
    align_docs,
    approximate_randomization,
    compare_systems,
    evaluate_docs,
    format_table,
    gold_pt_codes,
    gold_strings,
    make_mention_scorer,
    mention_counts,
    normalize_string,
    paired_bootstrap,
    pred_pt_codes,
    pred_strings,
    prf,
    relation_tuples,
    score_mentions,
    set_counts,
    span_text,
    summarize,
    unit_counts,
    units,
)

__all__ = [
    "ADR_LABEL",
    "LEVELS",
    "MICRO",
    "Counts",
    "align_docs",
    "approximate_randomization",
    "compare_systems",
    "evaluate_docs",
    "format_table",
    "gold_pt_codes",
    "gold_strings",
    "make_mention_scorer",
    "mention_counts",
    "normalize_string",
    "paired_bootstrap",
    "pred_pt_codes",
    "pred_strings",
    "prf",
    "relation_tuples",
    "score_mentions",
    "set_counts",
    "span_text",
    "summarize",
    "unit_counts",
    "units",
]
