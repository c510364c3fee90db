"""The pharmacovigilance outputs on the TAC 2017 test split (237 label
sections): ``clinie pipe --format table`` and ``--format fhir --fhir-kind
label`` with the deployable pipeline, then ``clinie report``.

1. Assemble ``en_clinie_ade`` (configs/en_clinie_ade.cfg: the trained tagger,
   the MedDRA linker on the train split's codes, medspaCy ConText) from
   ``--tagger`` into OUT/en_clinie_ade, unless ``--model`` names a pipeline.
2. Write the test split as ``clinie pipe`` input (id, label_id, section, text).
3. Run ``clinie pipe`` once per format, each a fresh subprocess (time, peak
   RSS as the run state records it), and check the outputs: every FHIR
   resource against the fhir.resources R4B model again, the table's
   reactions scored at reaction level against the gold strings (a
   consistency check with the evaluation numbers, not a new score).
4. ``clinie report`` of the table run (HTML + PNGs) and a screenshot of the
   page in Debian's Chromium (``--screenshot docs/report.png``).

Heavy: run it alone, under the lock.

    flock /work/notes/heavy.lock nice -n 5 .venv/bin/python benchmarks/outputs_tac.py \\
        --tagger training/ade_cpu/model-best --out /tmp/clinie_outputs_tac --screenshot docs/report.png
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
TAC_TEST = ROOT.parent / "shared" / "corpus" / "tac2017_adr" / "test.json"


def sh(cmd: List[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - start


def write_input(path: Path, limit: int = 0) -> Dict[str, Any]:
    """The test split as clinie pipe records, ids as the TAC reader makes them."""
    from spacy_clinie.readers.tac_onsides import load_records

    sections = load_records(TAC_TEST)[: limit or None]
    with open(path, "w", encoding="utf-8") as f:
        for s in sections:
            f.write(json.dumps({"id": f"{s['label_id']}/{s['section_name']}", "label_id": s["label_id"],
                                "section": s["section_name"], "text": s["section_text"]}) + "\n")
    return {"sections": len(sections), "labels": len({s["label_id"] for s in sections}),
            "chars": sum(len(s["section_text"]) for s in sections)}


def gold_reactions() -> Dict[str, set]:
    import spacy

    from spacy_clinie.readers.tac_onsides import read_onsides
    from spacy_clinie.scoring import gold_strings

    return {d._.doc_id: gold_strings(d)["AdverseReaction"] for d in read_onsides(spacy.blank("en"), TAC_TEST)}


def reaction_prf(rows: List[Dict[str, Any]], gold: Dict[str, set]) -> Dict[str, float]:
    pred: Dict[str, set] = {}
    for r in rows:
        pred.setdefault(r["document_id"], set()).add(r["reaction"])
    tp = sum(len(pred.get(d, set()) & g) for d, g in gold.items())
    n_pred = sum(len(p) for p in pred.values())
    n_gold = sum(len(g) for g in gold.values())
    p, r = tp / n_pred if n_pred else 0.0, tp / n_gold if n_gold else 0.0
    return {"p": round(p, 4), "r": round(r, 4), "f": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "tp": tp, "n_pred": n_pred, "n_gold": n_gold}


def run_stats(out: Path) -> Dict[str, Any]:
    from spacy_clinie.batch.report import load_run
    from spacy_clinie.batch.report import run_stats as stats

    return stats(load_run(out))


def screenshot(html: Path, png: Path) -> None:
    """The report in Debian's Chromium through chromedriver, as the review
    app's browser test drives it, once every figure has rendered."""
    import shutil
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="clinie-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", "--window-size=1400,1700",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(html.resolve().as_uri())
        WebDriverWait(driver, 120).until(
            lambda d: d.execute_script(
                "return document.querySelectorAll('.js-plotly-plot svg.main-svg').length"
                " >= document.querySelectorAll('.plotly-graph-div').length"
            )
        )
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tagger", type=Path, default=ROOT / "training/ade_cpu/model-best")
    parser.add_argument("--model", help="a pipeline path or package to use as it is (skips the assembly)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/clinie_outputs_tac"))
    parser.add_argument("--screenshot", type=Path, help="save the report page as this PNG")
    parser.add_argument("--limit", type=int, default=0, help="first N sections only (a smoke test)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    results: Dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    model = args.model
    if model is None:
        model = str(out / "en_clinie_ade")
        results["assemble_s"] = round(sh([py, "-m", "spacy_clinie", "package", "configs/en_clinie_ade.cfg", model,
                                          "--paths.tagger", str(args.tagger), "--paths.terms", "corpus/train.spacy"]), 1)
    results["model"] = model
    src = out / "tac_test.jsonl"
    results["input"] = write_input(src, args.limit)
    gold = gold_reactions()
    if args.limit:
        ids = {json.loads(line)["id"] for line in src.read_text().splitlines()}
        gold = {k: v for k, v in gold.items() if k in ids}

    runs = {
        "table": ["--format", "table"],
        "fhir": ["--format", "fhir", "--fhir-kind", "label"],
    }
    for name, opts in runs.items():
        target = out / name
        wall = sh([py, "-m", "spacy_clinie", "pipe", model, str(src), str(target), "--no-progress", "--overwrite",
                   "--batch-size", "8", *opts])
        results[name] = {"wall_s": round(wall, 1), **run_stats(target)}

    from fhir.resources.R4B import get_fhir_model_class

    from spacy_clinie.batch.fhir import read_resources, resource_reaction
    from spacy_clinie.batch.table import read_table

    rows = read_table(out / "table")
    results["table"]["rows"] = len(rows)
    results["table"]["rows_with_pt"] = sum(1 for r in rows if r["effect_meddra_id"] is not None)
    results["table"]["reaction_level_vs_gold"] = reaction_prf(rows, gold)
    resources = list(read_resources(out / "fhir"))
    for res in resources:
        get_fhir_model_class(res["resourceType"]).model_validate(res)
    results["fhir"]["resources"] = len(resources)
    results["fhir"]["revalidated"] = len(resources)
    fhir_pairs = {(r["document_id"], r["reaction"]) for r in map(resource_reaction, resources)}
    table_pairs = {(r["document_id"], r["reaction"]) for r in rows if not r["negated"]}
    results["fhir"]["same_reactions_as_table_minus_negated"] = fhir_pairs == table_pairs

    html = out / "table" / "report.html"
    results["report_s"] = round(sh([py, "-m", "spacy_clinie", "report", str(out / "table"), "--html", str(html),
                                    "--png", str(out / "png")]), 1)
    if args.screenshot:
        screenshot(html, args.screenshot)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
