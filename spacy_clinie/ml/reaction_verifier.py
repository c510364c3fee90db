"""``clinie.ReactionVerifier.v1``: the probability that a reaction candidate
is an ADE of this drug in this section, from its feature row.

A small MLP: the features (``candidates.reactions.FEATURE_NAMES``) are few
and already pooled over the candidate's occurrences, and the training set
is a few tens of thousands of candidates, so depth would only overfit.
"""
from spacy.util import registry
from thinc.api import Linear, Logistic, Model, Relu, chain
from thinc.types import Floats2d


@registry.architectures("clinie.ReactionVerifier.v1")
def build_reaction_verifier(hidden_width: int = 32, dropout: float = 0.1) -> Model[Floats2d, Floats2d]:
    """Features (n, F) -> probabilities (n, 1). ``hidden_width = 0`` is
    logistic regression."""
    if hidden_width > 0:
        model = chain(Relu(nO=hidden_width, dropout=dropout), Linear(nO=1), Logistic())
    else:
        model = chain(Linear(nO=1), Logistic())
    model.set_ref("output_layer", model.layers[-2])
    return model
