from pathlib import Path

import pytest

from spacy_clinie.readers import Report
from spacy_clinie.tokenizer import make_blank

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = ROOT.parent / "shared" / "corpus"


def shared(*parts: str) -> Path:
    """A file of the shared corpus. Missing data is a failure, not a skip:
    CI has ../shared beside the checkout."""
    path = SHARED_CORPUS.joinpath(*parts)
    assert path.exists(), f"shared corpus file missing: {path} (expected ../shared beside the checkout)"
    return path


@pytest.fixture(scope="session")
def nlp():
    return make_blank()


@pytest.fixture
def report():
    return Report()


@pytest.fixture(scope="session")
def tac_train(nlp):
    from spacy_clinie.readers import read_onsides

    rep = Report()
    docs = list(read_onsides(nlp, shared("tac2017_adr", "train.json"), report=rep))
    return docs, rep


@pytest.fixture(scope="session")
def tac_test(nlp):
    from spacy_clinie.readers import read_onsides

    rep = Report()
    docs = list(read_onsides(nlp, shared("tac2017_adr", "test.json"), report=rep))
    return docs, rep
