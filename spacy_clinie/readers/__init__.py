"""Readers and writers for the clinical ADE corpora."""
from ._util import MentionSpec, Report, read_text
from .brat import doc_to_brat, read_brat_dir, read_brat_file, write_brat
from .docbin import load_docs, system_docs, unannotated
from .euadr import read_euadr
from .tac_onsides import read_onsides
from .tac_xml import docs_to_tac_xml, read_tac_xml, write_tac_xml

__all__ = [
    "MentionSpec",
    "Report",
    "read_text",
    "doc_to_brat",
    "read_brat_dir",
    "read_brat_file",
    "write_brat",
    "load_docs",
    "system_docs",
    "unannotated",
    "read_euadr",
    "read_onsides",
    "docs_to_tac_xml",
    "read_tac_xml",
    "write_tac_xml",
]
