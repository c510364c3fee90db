from spacy.tokens import DocBin
from spacy.vocab import Vocab
from spacy_llm.registry import registry

from .model import SimulatedAnnotator


@registry.llm_models("clinie.SimulatedAnnotator.v1")
def make_simulated_annotator(
    gold_path: str,
    spans_key: str = "mentions",
    miss_rate: float = 0.0,
    spurious_rate: float = 0.0,
    boundary_rate: float = 0.0,
    seed: int = 0,
) -> SimulatedAnnotator:
    """A SIMULATION for planning, not an LLM: answers clinie.ADECorrect
    prompts from the gold spans in ``gold_path`` (.spacy; the texts the
    prompts come from), degraded at the given seeded rates (missed,
    spurious and boundary errors). Run ``clinie adapt`` with it at several
    rates to see which annotator quality adaptation needs; never ship it."""
    try:
        docs = list(DocBin().from_disk(gold_path).get_docs(Vocab()))
    except (OSError, ValueError) as err:
        raise ValueError(f"clinie.SimulatedAnnotator: cannot read gold_path {gold_path!r} ({err})") from None
    return SimulatedAnnotator(docs, spans_key=spans_key, miss_rate=miss_rate, spurious_rate=spurious_rate, boundary_rate=boundary_rate, seed=seed)
