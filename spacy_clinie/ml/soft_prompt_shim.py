"""The soft-prompt tagger's PyTorchShim (cf. spacy-transformers'
``hf_shim.py``): per-layer learning rates, the int8 copy's lifetime, and
(de)serialisation of the module with its tokenizer and Hugging Face config,
so that a saved pipeline loads without the original weights."""
import contextlib
import io
import os
import tarfile
import tempfile
from typing import Any, Optional, Tuple

import srsly
import torch
from thinc.api import PyTorchShim

from .optimizers import ScaledOptimizer
from .soft_prompt_module import SoftPromptModule, quantize_int8


class SoftPromptShim(PyTorchShim):
    """A PyTorchShim whose new layers (prompt projections, heads, CRF
    transitions) take ``head_lr_scale`` times the optimiser's learning rate.

    They start from scratch, while the encoder starts pretrained: at an
    encoder-sized rate (1e-4, a few hundred steps) a CRF's transition scores
    move by about 1e-3 and the heads barely leave their initialisation, so
    the encoder ends up fitting a random projection.
    """

    def __init__(self, *args: Any, head_lr_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_lr_scale = head_lr_scale
        self._int8: Optional[Tuple[SoftPromptModule, SoftPromptModule]] = None

    def int8_module(self) -> SoftPromptModule:
        """The int8 inference copy of the current weights (built on first
        use; dropped whenever the fp32 weights change)."""
        if self._int8 is None or self._int8[0] is not self._model:
            self._int8 = (self._model, quantize_int8(self._model))
        return self._int8[1]

    def finish_update(self, optimizer: Any) -> None:
        # thinc keys a shim's parameters (shim id, torch parameter name)
        self._int8 = None
        super().finish_update(ScaledOptimizer(optimizer, self.head_lr_scale, scales=_not_encoder))

    @contextlib.contextmanager
    def use_params(self, params: Any):
        self._int8 = None
        with super().use_params(params):
            yield
        self._int8 = None

    def from_bytes(self, bytes_data: bytes) -> "SoftPromptShim":
        self._int8 = None
        return super().from_bytes(bytes_data)


def _not_encoder(key: Tuple[int, str]) -> bool:
    return not key[1].startswith("encoder.")


def serialize_module(module: Optional[SoftPromptModule]) -> bytes:
    """HF config + tokenizer files + tags/prompts + state dict, in one tar."""
    if module is None:
        return b""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        module.encoder.config.to_json_file(os.path.join(tmp, "config.json"))
        module.tokenizer.save_pretrained(os.path.join(tmp, "tokenizer"))
        meta = {
            "tag_names": module.tag_names,
            "prompts": module.task_prompt,
            "heads": module.head_types,
            "strategy": module.strategy,
            "dropout": module.dropout.p,
        }
        srsly.write_json(os.path.join(tmp, "meta.json"), meta)
        torch.save(module.state_dict(), os.path.join(tmp, "state.pt"))
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(tmp, arcname=".")
    return buf.getvalue()


def deserialize_module(_: Any, data: bytes, device: torch.device) -> Optional[SoftPromptModule]:
    if not data:
        return None
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        meta = srsly.read_json(os.path.join(tmp, "meta.json"))
        config = AutoConfig.from_pretrained(os.path.join(tmp, "config.json"))
        try:  # same architecture as at initialisation: no pooler where possible
            encoder = AutoModel.from_config(config, add_pooling_layer=False)
        except TypeError:
            encoder = AutoModel.from_config(config)
        tokenizer = AutoTokenizer.from_pretrained(os.path.join(tmp, "tokenizer"))
        tokenizer.model_max_length = 10**9
        module = SoftPromptModule(encoder, tokenizer, meta["tag_names"], meta["prompts"], meta["heads"], meta["strategy"], meta["dropout"])
        module.load_state_dict(torch.load(os.path.join(tmp, "state.pt"), map_location=device))
    module.to(device)
    return module
