"""Mention labels shared by readers, pipes, scorers and outputs (cf.
``spacy/training/iob_utils.py``): the lowest module that all of them can
import, so that each name has one definition."""

# TAC 2017's adverse reaction mention type: the unit of the reaction and
# MedDRA PT levels, and the type the MedDRA linker codes by default
ADR_LABEL = "AdverseReaction"

__all__ = ["ADR_LABEL"]
