"""Candidate generators: reaction strings a tagger's contiguous spans cannot
spell, proposed from the text around its predictions for a verifier to score."""
from .coordination import (
    CoordinationCandidate,
    add_candidate_spans,
    coordination_candidates,
    make_coordination_candidates,
)

__all__ = [
    "CoordinationCandidate",
    "add_candidate_spans",
    "coordination_candidates",
    "make_coordination_candidates",
]
