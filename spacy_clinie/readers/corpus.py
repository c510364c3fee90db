"""Readers registered in spaCy's ``@readers`` registry, so a training config
can read the source formats directly (``[corpora.train] @readers =
"clinie.TacOnsidesCorpus.v1"``). Most projects convert once with
``clinie convert`` and train from the ``.spacy`` files instead."""
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus, Example
from spacy.util import registry

from ..extensions import copy_doc_meta, register_extensions
from .brat import read_brat_dir
from .euadr import read_euadr
from .tac_onsides import read_onsides
from .tac_xml import read_tac_xml


def _examples(nlp: Language, docs: Iterable[Doc], limit: int) -> Iterator[Example]:
    for i, doc in enumerate(docs):
        if limit and i >= limit:
            break
        yield Example(copy_doc_meta(doc, nlp.make_doc(doc.text)), doc)


@registry.readers("clinie.Corpus.v1")
def create_docbin_corpus(
    path: Optional[Path],
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    augmenter: Optional[Callable[[Language, Example], Iterable[Example]]] = None,
) -> Callable[[Language], Iterator[Example]]:
    """``spacy.Corpus.v1`` over ``.spacy`` files, except that each example's
    input doc keeps the document metadata (``doc._.section``, ``label_id``,
    ``doc_id``): the tagger's ``context`` reads it in training and on dev,
    as it does at inference."""
    corpus = Corpus(path, gold_preproc=gold_preproc, max_length=max_length, limit=limit, augmenter=augmenter)

    def reader(nlp: Language) -> Iterator[Example]:
        for eg in corpus(nlp):
            copy_doc_meta(eg.reference, eg.predicted)
            yield eg

    return reader


@registry.readers("clinie.TacOnsidesCorpus.v1")
def create_tac_onsides_corpus(path: Path, project: bool = True, limit: int = 0) -> Callable[[Language], Iterator[Example]]:
    """OnSIDES TAC 2017 JSON; ``project`` places every occurrence of each
    annotated string (see ``readers.tac_onsides``)."""

    def reader(nlp: Language) -> Iterator[Example]:
        return _examples(nlp, read_onsides(nlp, path, project=project), limit)

    return reader


@registry.readers("clinie.TacXmlCorpus.v1")
def create_tac_xml_corpus(path: Path, discontiguous: str = "merge", limit: int = 0) -> Callable[[Language], Iterator[Example]]:
    """A TAC 2017 XML file or a folder of them (sorted)."""

    def reader(nlp: Language) -> Iterator[Example]:
        files = sorted(Path(path).glob("*.xml")) if Path(path).is_dir() else [Path(path)]
        docs = (doc for f in files for doc in read_tac_xml(nlp, f, discontiguous=discontiguous))
        return _examples(nlp, docs, limit)

    return reader


@registry.readers("clinie.BratCorpus.v1")
def create_brat_corpus(path: Path, discontiguous: str = "merge", limit: int = 0) -> Callable[[Language], Iterator[Example]]:
    """A folder of brat ``.txt``/``.ann`` pairs."""

    def reader(nlp: Language) -> Iterator[Example]:
        return _examples(nlp, read_brat_dir(nlp, path, discontiguous=discontiguous), limit)

    return reader


@registry.readers("clinie.EuAdrCorpus.v1")
def create_euadr_corpus(path: Path, limit: int = 0) -> Callable[[Language], Iterator[Example]]:
    """The EU-ADR drug–disorder relation TSV."""

    def reader(nlp: Language) -> Iterator[Example]:
        return _examples(nlp, read_euadr(nlp, path), limit)

    return reader


def gold_mention_copy(doc: Doc) -> Doc:
    """The doc with its mentions (ids, attributes, tokenisation) but no
    relations: the input of a relation linker evaluated on gold mentions."""
    register_extensions()
    copy = doc.copy()
    copy._.relations = []
    return copy


@registry.readers("clinie.GoldMentionsCorpus.v1")
def create_gold_mentions_corpus(path: Optional[Path], limit: int = 0) -> Callable[[Language], Iterable[Example]]:
    """Examples from a ``.spacy`` file whose predicted docs already hold the
    gold mentions (without relations), so that training and ``spacy
    evaluate`` measure relation classification given the mentions (the
    EU-ADR protocol), as in spaCy's rel_component tutorial."""

    def reader(nlp: Language) -> Iterable[Example]:
        if path is None:
            raise ValueError("clinie.GoldMentionsCorpus.v1: no path given (set [paths] train / dev)")
        register_extensions()
        docs = DocBin().from_disk(path).get_docs(nlp.vocab)
        for i, doc in enumerate(docs):
            if limit and i >= limit:
                break
            yield Example(gold_mention_copy(doc), doc)

    return reader
