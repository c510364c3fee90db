"""Terminologies for linking, split like ``spacy/kb/``: MedDRA terms and
their file formats (``terms``), normalisation rules (``normalize``), the
index and its candidates (``index``) and the registered loaders
(``loaders``); the drug dictionary (``drugs``). No licensed content ships
here. The sentence encoder, which needs torch, is ``ml.sentence_encoder``."""
from .index import Candidate, MeddraCandidateGenerator, MeddraIndex
from .loaders import load_terms
from .normalize import TermNormalizer
from .terms import Term, read_meddra_ascii, read_terms_table, terms_from_docs, write_terms_table

__all__ = [
    "Candidate",
    "MeddraCandidateGenerator",
    "MeddraIndex",
    "Term",
    "TermNormalizer",
    "load_terms",
    "read_meddra_ascii",
    "read_terms_table",
    "terms_from_docs",
    "write_terms_table",
]
