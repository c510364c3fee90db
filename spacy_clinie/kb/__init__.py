"""Terminologies for linking (MedDRA). No licensed content ships here."""
from .meddra import (  # noqa: F401
    Candidate,
    MeddraIndex,
    SentenceEncoder,
    Term,
    TermNormalizer,
    read_meddra_ascii,
    read_terms_table,
    terms_from_docs,
    write_terms_table,
)
