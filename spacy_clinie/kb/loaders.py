"""The registered ``kb_loader`` functions a linker's ``initialize`` calls,
and ``load_terms`` for any term source (ASCII release, .spacy corpus,
terms table)."""
from pathlib import Path
from typing import Callable, List, Union

from spacy.util import registry

from .terms import Term, read_meddra_ascii, read_terms_table, terms_from_docs


@registry.misc("clinie.MeddraAsciiLoader.v1")
def make_meddra_ascii_loader(path: str, noncurrent_llts: bool = True) -> Callable[[], List[Term]]:
    """kb_loader for ``initialize``: a licensed MedDRA ASCII release folder."""

    def load() -> List[Term]:
        return read_meddra_ascii(path, noncurrent_llts=noncurrent_llts)

    return load


@registry.misc("clinie.MeddraTermsTable.v1")
def make_meddra_terms_loader(path: str) -> Callable[[], List[Term]]:
    """kb_loader for ``initialize``: a terms table (``clinie meddra build-terms``)."""

    def load() -> List[Term]:
        return read_terms_table(path)

    return load


@registry.misc("clinie.MeddraCorpusTerms.v1")
def make_meddra_corpus_loader(path: str, synonyms: bool = True) -> Callable[[], List[Term]]:
    """kb_loader for ``initialize``: terms from a .spacy corpus's gold
    normalisations (e.g. the training split)."""

    def load() -> List[Term]:
        from ..readers import load_docs

        return terms_from_docs(load_docs(path), synonyms=synonyms)

    return load


def load_terms(path: Union[str, Path], *, synonyms: bool = True, noncurrent_llts: bool = True) -> List[Term]:
    """Terms from whichever source ``path`` is: a MedDRA ASCII release folder,
    a .spacy corpus (its gold normalisations) or a terms table (.tsv)."""
    path = Path(path)
    if path.is_dir():
        return read_meddra_ascii(path, noncurrent_llts=noncurrent_llts)
    if path.suffix == ".spacy":
        from ..readers import load_docs

        return terms_from_docs(load_docs(path), synonyms=synonyms)
    return read_terms_table(path)
