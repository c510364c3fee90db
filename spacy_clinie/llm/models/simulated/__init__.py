from .model import SimulatedAnnotator, annotator_scores
from .registry import make_simulated_annotator

__all__ = ["SimulatedAnnotator", "annotator_scores", "make_simulated_annotator"]
