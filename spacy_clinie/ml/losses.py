"""Losses shared by the pipes that train sigmoid outputs."""
from typing import Any

from thinc.types import Floats2d


def binary_cross_entropy(ops: Any, probs: Floats2d, truths: Floats2d) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 targets
    (clipped away from 0 and 1); 0 for an empty batch."""
    if probs.size == 0:
        return 0.0
    p = ops.xp.clip(probs, 1e-7, 1 - 1e-7)
    return float(-(truths * ops.xp.log(p) + (1 - truths) * ops.xp.log(1 - p)).mean())
