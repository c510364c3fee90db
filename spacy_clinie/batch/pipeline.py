"""Loading and running the pipeline for ``clinie pipe``, shared by the local
and the Ray backends: ``--code`` imports, ``spacy.load`` on the right device
with the tagger's prediction settings, one-record re-runs that name the
component that raised, and giving a dropped pipeline's memory back."""
import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Set, Tuple, Union

from spacy.language import Language

from .inputs import Record

_IMPORTED_CODE: Set[Path] = set()


def import_code(code: Optional[Union[str, Path]]) -> None:
    """Import a Python file with custom components (spaCy's ``--code``),
    so that pipelines using factories outside any installed package load."""
    if code is None:
        return
    from spacy.util import import_file

    path = Path(code).resolve()
    if not path.is_file():
        raise ValueError(f"{path}: --code must name a Python file")
    if path not in _IMPORTED_CODE:
        import_file("clinie_pipe_code", path)
        _IMPORTED_CODE.add(path)


def load_pipeline(
    model: Union[str, Path],
    gpu_id: int = -1,
    code: Optional[Union[str, Path]] = None,
    inference: str = "fp32",
    bucket_by_length: bool = False,
) -> Language:
    """``spacy.load`` after ``require_gpu`` when a GPU is asked for (it must
    come first so the weights are allocated on the device); ``inference`` and
    ``bucket_by_length`` other than the defaults switch the pipeline's
    soft-prompt taggers (an error if it has none)."""
    import spacy

    import_code(code)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    if inference != "fp32" or bucket_by_length:
        from ..pipeline.soft_prompt_tagger import set_inference

        if not set_inference(nlp, inference, bucket_by_length):
            raise ValueError(f"{model}: --inference/--bucket-by-length need a clinie_soft_prompt_tagger; the pipeline has {nlp.pipe_names}")
    return nlp


@dataclass
class Failed:
    """What the local stream yields instead of a JSON record for a record
    a pipeline component raised on."""

    record: Record
    reason: str


def describe(err: BaseException, limit: int = 500) -> str:
    text = str(err).strip().replace("\n", " ")
    return f"{type(err).__name__}: {text[:limit]}" + ("..." if len(text) > limit else "")


def annotate_one(nlp: Language, text: str) -> Tuple[Optional[Any], Optional[str]]:
    """``nlp(text)`` one component at a time: ``(doc, None)``, or ``(None,
    reason)`` naming the component that raised and the exception's type and
    message."""
    try:
        doc = nlp.make_doc(text)
    except Exception as err:
        return None, f"the tokenizer raised {describe(err)}"
    for name, proc in nlp.pipeline:
        try:
            doc = proc(doc)
        except Exception as err:
            return None, f"pipeline component {name!r} raised {describe(err)}"
    return doc, None


def release_memory() -> None:
    """Collect cycles, then ask glibc to give freed heap pages back to the
    OS (``malloc_trim``), so a dropped pipeline's vocab lowers the RSS
    instead of only the heap's free lists. A no-op where there is no glibc."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
