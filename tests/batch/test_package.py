"""Packaging: the en_clinie_ade config resolves through entry points, and a
tiny trained pipeline of clinie components goes through write_meta →
``spacy package --build wheel,sdist`` → ``pip install --no-deps --target``
→ ``spacy.load("en_clinie_ade")`` in a fresh process that never imports
spacy_clinie itself."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Span
from spacy.training import Example

from spacy_clinie.packaging import performance, write_meta
from spacy_clinie.pipeline.context import add_context_pipes
from spacy_clinie.tokenizer import make_blank

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "en_clinie_ade.cfg"
NAUSEA = {
    "meddra_pt": "Nausea",
    "meddra_pt_id": "10028813",
    "meddra_llt": "Nausea",
    "meddra_llt_id": "10028813",
}


def test_config_assembles_every_component_by_entry_point():
    """Resolve the factories in a fresh process without importing
    spacy_clinie: what `spacy assemble` / `spacy.load` will need."""
    code = (
        "import sys, spacy\n"
        "from spacy.util import load_config\n"
        "from spacy.language import Language\n"
        f"cfg = load_config({str(CONFIG)!r}, interpolate=False)\n"
        "spacy.blank('en')  # a Language loads the spacy_factories entry points\n"
        "names = cfg['nlp']['pipeline']\n"
        "facts = {n: cfg['components'][n].get('factory') for n in names}\n"
        "missing = [f for f in facts.values() if f and not Language.has_factory(f)]\n"
        "assert not missing, missing\n"
        "print(names, cfg['nlp']['disabled'], facts)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "'clinie_relation_linker'" in out.stdout and "'clinie_meddra_linker'" in out.stdout
    assert "'medspacy_context'" in out.stdout and "'clinie_context_attributes'" in out.stdout
    assert "['llm_corrector', 'relation_linker']" in out.stdout  # switched off by default
    assert "'llm'" in out.stdout  # spacy-llm's component running clinie.ADECorrect.v2 (gated)
    assert cfg_task(CONFIG) == ("clinie.ADECorrect.v2", "on")
    assert "'clinie_drug_ner'" in out.stdout and "'clinie_drug_ade_linker'" in out.stdout  # issue 25
    assert "'reaction_verifier'" in out.stdout  # issue 19, sourced from the tuned verifier


def _tiny_trained_pipeline(path: Path) -> Path:
    nlp = make_blank()
    ruler = nlp.add_pipe("span_ruler", config={"spans_key": "mentions", "phrase_matcher_attr": "LOWER"})
    nlp.add_pipe("clinie_reaction_verifier")  # issue 19: on, with its default thresholds
    nlp.add_pipe("clinie_relation_linker", config={"threshold": 0.5})
    nlp.add_pipe("clinie_drug_ner")
    nlp.add_pipe("clinie_meddra_linker", config={"encoder": None})
    add_context_pipes(nlp)
    nlp.add_pipe("clinie_drug_ade_linker")

    examples = []
    for text in ("The patient had no nausea .", "No rash was seen .", "Severe nausea and rash ."):
        pred = nlp.make_doc(text)
        gold = nlp.make_doc(text)
        spans = []
        for i, tok in enumerate(gold):
            label = (
                "Negation"
                if tok.lower_ == "no"
                else "AdverseReaction"
                if tok.lower_ in ("nausea", "rash")
                else None
            )
            if label:
                spans.append(Span(gold, i, i + 1, label=label, span_id=f"T{len(spans) + 1}"))
        gold.spans["mentions"] = spans
        for s in gold.spans["mentions"]:
            if s.text.lower() == "nausea":
                s._.meddra = [dict(NAUSEA)]
        neg = [s.id_ for s in spans if s.label_ == "Negation"]
        adr = [s.id_ for s in spans if s.label_ == "AdverseReaction"]
        gold._.relations = [{"id": "R1", "label": "Negated", "head": adr[0], "tail": neg[0]}] if neg else []
        examples.append(Example(pred, gold))
    optimizer = nlp.initialize(lambda: examples)
    ruler.add_patterns(  # after initialize, which clears a span_ruler
        [{"label": "AdverseReaction", "pattern": t} for t in ("nausea", "rash")]
        + [{"label": "Negation", "pattern": "no"}]
    )
    for _ in range(15):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    nlp.to_disk(path)
    return path


def test_performance_leaves_out_levels_without_predictions(tmp_path):
    metrics = tmp_path / "tagger_test.json"
    zero = {"p": 0.0, "r": 0.0, "f": 0.0, "tp": 0, "n_pred": 0, "n_gold": 12}
    metrics.write_text(json.dumps({"reaction": {"micro": {"p": 0.5, "r": 0.5, "f": 0.5, "n_pred": 4}}, "pt": {"micro": zero}}))
    perf = performance([metrics])
    assert perf["reaction_f"] == 0.5
    assert "pt_f" not in perf and "pt_p" not in perf
    assert perf["evaluation"]["tagger_test"]["pt"]["micro"] == zero


def test_performance_later_system_replaces_a_level_even_when_empty(tmp_path):
    """Named scores come after the files; a level the later system predicted
    nothing for leaves the headline instead of keeping the earlier score."""
    metrics = tmp_path / "tagger_test.json"
    metrics.write_text(json.dumps({"reaction": {"micro": {"p": 0.5, "r": 0.5, "f": 0.5, "n_pred": 4}},
                                   "mention_strict": {"micro": {"p": 0.4, "r": 0.4, "f": 0.4, "n_pred": 5}}}))  # fmt: skip
    pipeline = {"reaction": {"micro": {"p": 0.6, "r": 0.6, "f": 0.6, "n_pred": 4}},
                "mention_strict": {"micro": {"p": 0.0, "r": 0.0, "f": 0.0, "n_pred": 0}}}  # fmt: skip
    perf = performance([metrics], {"pipeline_test": pipeline})
    assert perf["reaction_f"] == 0.6
    assert "mention_strict_f" not in perf
    assert list(perf["evaluation"]) == ["tagger_test", "pipeline_test"]


def test_performance_leaves_out_levels_without_gold(tmp_path):
    """TAC has no drug-ADE relations: the relation level's F1 is undefined
    there, not 0, even though the pipeline predicts relations."""
    metrics = tmp_path / "pipeline_test.json"
    metrics.write_text(json.dumps({"reaction": {"micro": {"p": 0.5, "r": 0.5, "f": 0.5, "n_pred": 4, "n_gold": 4}},
                                   "relation": {"micro": {"p": 0.0, "r": 0.0, "f": 0.0, "n_pred": 9, "n_gold": 0}}}))  # fmt: skip
    perf = performance([metrics])
    assert perf["reaction_f"] == 0.5
    assert not any(key.startswith("relation_") for key in perf)


def test_package_readme_follows_the_latest_scores(tmp_path):
    """``spacy package --force`` keeps the README of its previous build
    unless the pipeline directory has one: write_meta writes it."""
    from spacy.cli.package import package as spacy_package

    model = spacy.blank("en")
    model.meta.update(name="readme_check", version="0.0.1")
    model.to_disk(tmp_path / "model")
    packages = tmp_path / "packages"
    packages.mkdir()
    metrics = tmp_path / "run_test.json"
    readmes = []
    for f in (0.25, 0.75):
        metrics.write_text(json.dumps({"reaction": {"micro": {"p": f, "r": f, "f": f, "n_pred": 4, "n_gold": 4}}}))
        write_meta(tmp_path / "model", [metrics])
        spacy_package(tmp_path / "model", packages, create_sdist=False, force=True, silent=True)
        readmes.append((packages / "en_readme_check-0.0.1" / "README.md").read_text())
    assert "| `REACTION_F` | 25.00 |" in readmes[0]
    assert "| `REACTION_F` | 75.00 |" in readmes[1] and "25.00" not in readmes[1]


def test_package_install_and_load_in_fresh_process(tmp_path):
    model = _tiny_trained_pipeline(tmp_path / "model")
    metrics = tmp_path / "tiny_test.json"
    metrics.write_text(json.dumps({"mention_strict": {"micro": {"p": 0.5, "r": 0.25, "f": 1 / 3}}}))
    assert performance([metrics])["mention_strict_f"] == pytest.approx(1 / 3)
    write_meta(model, [metrics], name="clinie_ade", version="0.0.1", description="test build")

    packages = tmp_path / "packages"
    packages.mkdir()
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "package",
            str(model),
            str(packages),
            "--build",
            "wheel,sdist",
            "--force",
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    dist = packages / "en_clinie_ade-0.0.1" / "dist"
    wheels = list(dist.glob("en_clinie_ade-0.0.1-*.whl"))
    assert len(wheels) == 1 and (dist / "en_clinie_ade-0.0.1.tar.gz").exists(), sorted(dist.iterdir())

    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheels[0]),
        ],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr

    code = (
        "import json, sys, spacy\n"
        "nlp = spacy.load('en_clinie_ade')\n"
        "doc = nlp('The patient had no nausea .')\n"
        "spans = [(s.text, s.label_, s.id_, s._.meddra, s._.attributes) for s in doc.spans['mentions']]\n"
        "drug = nlp('Rash on lisinopril .')\n"
        "links = [(r['label'], r['method']) for r in drug._.relations if r['label'] == 'ADE-Drug']\n"
        "print(json.dumps({'file': spacy.util.get_package_path('en_clinie_ade').as_posix(), 'pipes': nlp.pipe_names,\n"
        "    'spans': spans, 'relations': doc._.relations, 'perf': nlp.meta['performance'], 'links': links}))\n"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(target.as_posix())
    assert got["pipes"] == [
        "span_ruler",
        "clinie_reaction_verifier",
        "clinie_relation_linker",
        "clinie_drug_ner",
        "clinie_meddra_linker",
        "sentencizer",
        "medspacy_sectionizer",
        "medspacy_context",
        "clinie_context_attributes",
        "clinie_drug_ade_linker",
    ]
    spans = {text: (label, meddra, attrs) for text, label, _, meddra, attrs in got["spans"]}
    assert set(spans) == {"no", "nausea"}, got["spans"]
    assert spans["nausea"][1][0]["meddra_pt_id"] == "10028813"
    assert 0.0 <= spans["nausea"][2]["reaction_probability"] <= 1.0  # judged by the verifier
    assert spans["nausea"][2].get("is_negated") is True  # ConText through clinie_context_attributes
    assert [r["label"] for r in got["relations"]] == ["Negated"]  # the trained relation linker
    assert got["links"] == [["ADE-Drug", "rule_all"]]  # drug mention and link (issue 25)
    assert got["perf"]["mention_strict_f"] == pytest.approx(1 / 3)
    assert got["perf"]["evaluation"]["tiny_test"]["mention_strict"]["micro"]["p"] == 0.5


def cfg_task(path: Path):
    """The packaged corrector's task and gate mode."""
    from spacy.util import load_config

    task = load_config(path, interpolate=False)["components"]["llm_corrector"]["task"]
    return task["@llm_tasks"], task.get("gate_mode")
