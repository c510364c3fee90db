"""``.spacy`` (DocBin) files as the rest of the package reads them: with the
Doc/Span extensions registered, a clear error for an unreadable file, and
fresh unannotated copies to run a pipeline on. Kept with the readers so that
low-level code (``kb/``, ``review/``, ``llm/``) never imports the converter."""
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..errors import FormatError
from ..extensions import copy_doc_meta, register_extensions
from ..tokenizer import make_blank


def load_docs(path: Union[str, Path], nlp: Optional[Language] = None) -> List[Doc]:
    """Docs from a ``.spacy`` file, with the extensions registered."""
    register_extensions()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    nlp = nlp or make_blank()
    try:
        return list(DocBin().from_disk(path).get_docs(nlp.vocab))
    except Exception as err:  # DocBin raises several msgpack/zlib errors
        raise FormatError(f"not a readable .spacy file ({err})", path=path)


def unannotated(nlp: Language, docs: Iterable[Doc]) -> Iterator[Doc]:
    """Fresh docs with the texts and metadata (id, label, section) of
    ``docs`` and none of their annotations: what a pipeline is run on."""
    return (copy_doc_meta(doc, nlp.make_doc(doc.text)) for doc in docs)


def system_docs(source: str, gold: List[Doc], *, gpu_id: int = -1, batch_size: int = 64) -> List[Doc]:
    """A system's docs for scoring against ``gold``: read from a .spacy
    file, or made by running a pipeline (path or package name) over the gold
    texts, with a progress bar. ``gpu_id`` follows spaCy's ``--gpu-id``."""
    if str(source).endswith(".spacy"):
        return load_docs(source)
    import spacy
    from tqdm import tqdm

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(source)
    docs = nlp.pipe(unannotated(nlp, gold), batch_size=batch_size)
    return list(tqdm(docs, total=len(gold), desc="predicting", unit="doc"))
