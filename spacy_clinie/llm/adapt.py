"""Seed 001's SALA loop (Algorithm 1): adapt the tagger to a new site with a
private LLM, without labelled target data.

1. Pseudo-label the target corpus; every sentence unit gets the tagger's
   mean token entropy. The top-K most uncertain units are the annotation
   targets; the lowest-entropy R% per class form the demonstration pool.
2. Each iteration: the LLM corrects the tagger's prediction on every
   remaining target (the clinie.ADECorrect prompt, demos retrieved by
   similarity); the tagger is fine-tuned on all LLM annotations so far; each
   annotation's per-token loss under the fine-tuned tagger is computed, the
   ones below tau are clean: they become the demonstration pool and leave
   the target set (the rest are annotated again next time).

With a task whose edit gate is fitted (clinie.ADECorrect.v2 and a gate
file), an answer does not replace the tagger's spans wholesale: only the
edits the gate accepts apply (issue 20: a small LLM mostly deletes correct
mentions, and fine-tuning on that teaches the tagger to find nothing).

Everything lives under one output folder: ``state.json`` (written
atomically after every step, LLM answers every few units) and
``iter_N/model`` checkpoints, so a killed run restarts where it stopped.
``eval_sets`` (labelled corpora other than the target texts, e.g. the target
site's dev and test splits) are scored after every iteration, and their
predictions kept as ``iter_N/pred_<name>.spacy`` for significance tests.
"""
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

from ..errors import Errors, FormatError
from ..extensions import MENTIONS_KEY, register_extensions
from ..ml.optimizers import retraining_optimizer
from .confidence import unit_entropy, units
from .demos import lowest_entropy
from .edits import apply_edits

Unit = Tuple[int, int, int]  # (doc index, start token, end token)
STATE = "state.json"


def _key(u: Sequence[int]) -> str:
    return f"{u[0]}:{u[1]}:{u[2]}"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf8")
    os.replace(tmp, path)


def _read_state(path: Path) -> Dict[str, Any]:
    """The saved run state, ``{}`` for a new run; a damaged file is a clear
    error (it is written atomically, so only an outside edit damages it)."""
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"unreadable run state ({err}); delete it to start again", path=path) from None
    if not isinstance(state, dict):
        raise FormatError("unreadable run state (not a JSON object); delete it to start again", path=path)
    return state


def load_target_texts(path: Path, nlp: Language) -> List[str]:
    """Texts of the unlabelled target corpus: a .spacy file (annotations are
    ignored), a JSONL file with a "text" field, or a folder of .txt files.
    Bad input raises ``FormatError`` naming the file (and line)."""
    from ..readers import load_docs
    from ..readers import read_text

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise FormatError("no .txt files in this folder", path=path)
        return [read_text(f) for f in files]
    if path.suffix == ".spacy":
        texts = [d.text for d in load_docs(path, nlp)]
        if not texts:
            raise FormatError(Errors.E014.format(path=path), path=path)
        return texts
    if path.suffix == ".jsonl":
        out = []
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise FormatError(Errors.E002.format(pos=err.start, reason=err.reason), path=path, record=f"line {n}") from None
                try:
                    text = json.loads(line)["text"]
                except (ValueError, KeyError, TypeError) as e:
                    raise FormatError(f"expected a JSON object with a 'text' string ({e})", path=path, record=f"line {n}") from None
                if not isinstance(text, str):
                    raise FormatError(f"'text' is {type(text).__name__}, not a string", path=path, record=f"line {n}")
                out.append(text)
        if not out:
            raise FormatError(Errors.E001, path=path)
        return out
    raise FormatError("expected a .spacy or .jsonl file or a folder of .txt files", path=path)


class SalaRun:
    """One resumable SALA run. ``task``: a clinie.ADECorrect task (prompts,
    parsing, resolver, demo retrieval); ``llm``: a spacy-llm model."""

    def __init__(
        self,
        model_path: Path,
        texts: List[str],
        output: Path,
        *,
        task: Any,
        llm: Callable,
        k: int,
        ratio: float,
        tau: float,
        n_iter: int,
        epochs: int,
        learn_rate: float,
        batch_size: int,
        rehearsal: float = 1.0,
        gold: Optional[List[Doc]] = None,
        eval_sets: Optional[Dict[str, List[Doc]]] = None,
        seed: int = 0,
        progress: Optional[Callable[[str, int], Any]] = None,
        log: Callable[[str], None] = print,
    ) -> None:
        register_extensions()
        self.model_path = Path(model_path)
        self.texts = texts
        self.output = Path(output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.task = task
        self.llm = llm
        self.k, self.ratio, self.tau, self.n_iter = k, ratio, tau, n_iter
        self.epochs, self.learn_rate, self.batch_size = epochs, learn_rate, batch_size
        self.rehearsal = rehearsal
        self.gold = gold
        self.eval_sets = dict(eval_sets or {})
        self.seed = seed
        self.progress = progress
        self.log = log
        self.state_path = self.output / STATE
        self.state: Dict[str, Any] = _read_state(self.state_path)
        self._loaded: Optional[Tuple[int, Language]] = None

    # ------------------------------------------------------------ helpers

    def save(self) -> None:
        _write_json(self.state_path, self.state)

    def current_model(self) -> Language:
        """The latest checkpoint (the source model before any fine-tuning),
        kept in memory between the steps of one process."""
        done = self.state.get("finetuned", 0)
        if self._loaded is None or self._loaded[0] != done:
            path = self.output / f"iter_{done}" / "model" if done else self.model_path
            self._loaded = (done, spacy.load(path))
        return self._loaded[1]

    def tag(self, nlp: Language, texts: Sequence[Union[str, Doc]], what: str) -> List[Doc]:
        bar = self.progress(what, len(texts)) if self.progress else None
        docs = []
        for doc in nlp.pipe(texts, batch_size=8):
            docs.append(doc)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return docs

    def evaluate(self, nlp: Language, iteration: int, pred: Optional[List[Doc]] = None) -> Optional[Dict[str, Any]]:
        """Scores against ``gold`` (the gold docs of the target texts, in
        order; ``pred``: the model's docs for them, when already tagged) and
        against each of ``eval_sets`` (``{name: scores}``, predictions saved
        under ``iter_N/``). None when there is nothing to score against."""
        from ..readers import unannotated
        from ..scoring import evaluate_docs

        def summary(gold: List[Doc], docs: List[Doc]) -> Dict[str, float]:
            scores = evaluate_docs(gold, docs)
            return {
                "mention_strict_f": round(scores["mention_strict"]["micro"]["f"], 4),
                "mention_strict_p": round(scores["mention_strict"]["micro"]["p"], 4),
                "mention_strict_r": round(scores["mention_strict"]["micro"]["r"], 4),
                "reaction_f": round(scores["reaction"]["micro"]["f"], 4),
            }

        out: Dict[str, Any] = {}
        if self.gold:
            out.update(summary(self.gold, pred if pred is not None else self.tag(nlp, [d.text for d in self.gold], "scoring")))
        for name, gold in self.eval_sets.items():
            docs = self.tag(nlp, list(unannotated(nlp, gold)), f"scoring {name}")
            folder = self.output / f"iter_{iteration}"
            folder.mkdir(parents=True, exist_ok=True)
            DocBin(store_user_data=True, docs=docs).to_disk(folder / f"pred_{name}.spacy")
            out[name] = summary(gold, docs)
        return out or None

    # ------------------------------------------------------------ steps

    def initialize(self) -> None:
        """Pseudo-label, pick the top-K uncertain units and the demo pool."""
        started = time.time()
        nlp = self.current_model()
        docs = self.tag(nlp, self.texts, "pseudo-labelling")
        scored = []
        for i, doc in enumerate(docs):
            for s, e in units(doc, self.task.max_unit_tokens):
                scored.append(((i, s, e), unit_entropy(doc, s, e)))
        scored.sort(key=lambda x: -x[1])
        targets = [list(u) for u, _ in scored[: self.k]]
        target_keys = {_key(u) for u in targets}
        pool = []
        for (i, s, e), h in scored:
            if _key((i, s, e)) in target_keys:
                continue
            doc = docs[i]
            ents = [[sp.text, sp.label_] for sp in sorted(doc.spans.get(MENTIONS_KEY, []), key=lambda x: x.start) if sp.start >= s and sp.end <= e]
            pool.append({"text": doc[s:e].text.strip(), "entities": ents, "entropy": h})
        demos = lowest_entropy(pool, list(self.task.labels), self.ratio)
        # rehearsal: the most confident pseudo-labelled units, mixed into
        # fine-tuning so a small LLM-annotated set does not wipe out what
        # the source model knows (not in seed 001; --rehearsal 0 turns it off)
        rehearsal = self._rehearsal_units(docs, [(u, h) for u, h in scored if _key(u) not in target_keys])
        self.state = {
            "k": self.k,
            "ratio": self.ratio,
            "tau": self.tau,
            "n_docs": len(self.texts),
            "n_units": len(scored),
            "targets": targets,
            "target_entropy": [round(h, 4) for _, h in scored[: self.k]],
            "demos": demos,
            "annotations": {},  # unit key -> [[start, end, label], ...] token spans
            "rehearsal": rehearsal,
            "iteration": 0,
            "stage": "annotate",
            "finetuned": 0,
            "history": [],
            "annotations_by_iteration": {},  # iteration -> that iteration's answers, for annotator quality
            "seconds": {"init": round(time.time() - started, 1)},
        }
        score = self.evaluate(nlp, 0, docs)  # the pseudo-labels are the source model's predictions
        self.state["history"].append({"iteration": 0, "scores": score, "targets": len(targets), "demos": len(demos)})
        self.log(f"init: {len(scored)} units in {len(self.texts)} docs; {len(targets)} targets; {len(demos)} demos; scores {score}")
        self.save()

    def _rehearsal_units(self, docs: List[Doc], candidates: List[Tuple[Unit, float]]) -> Dict[str, List[List[Any]]]:
        """The ``rehearsal * K`` most confident units, taken separately from
        units with and without predicted mentions in the pool's proportion:
        the most confident units overall are nearly all short and empty, and
        rehearsing only those taught the tagger to predict nothing (issue 20:
        even gold annotation of the K units lost recall)."""
        def spans(u: Unit) -> List[List[Any]]:
            i, s, e = u
            return [[sp.start - s, sp.end - s, sp.label_] for sp in docs[i].spans.get(MENTIONS_KEY, []) if sp.start >= s and sp.end <= e]

        n = int(self.rehearsal * self.k)
        labelled = [(tuple(u), spans(u)) for u, _ in sorted(candidates, key=lambda x: x[1])]
        with_spans = [x for x in labelled if x[1]]
        empty = [x for x in labelled if not x[1]]
        n_pos = round(n * len(with_spans) / len(labelled)) if labelled else 0
        chosen = with_spans[:n_pos] + empty[: n - n_pos]
        return {_key(u): sp for u, sp in chosen}

    def annotate(self) -> None:
        """LLM correction of the current model's prediction on every target."""
        started = time.time()
        it = self.state["iteration"] + 1
        done = self.state.setdefault("annotated_now", [])
        todo = [u for u in self.state["targets"] if _key(u) not in set(done)]
        nlp = self.current_model()
        self.task.demos.replace(self.state["demos"])
        doc_ids = sorted({u[0] for u in todo})
        docs = dict(zip(doc_ids, self.tag(nlp, [self.texts[i] for i in doc_ids], f"iteration {it}: re-tagging targets")))
        bar = self.progress(f"iteration {it}: LLM annotation", len(todo)) if self.progress else None
        counts = self.state.setdefault("llm_counts", {"prompted": 0, "unparseable": 0, "dropped_entities": 0})
        gate = getattr(self.task, "gate", None)
        gated = gate is not None and gate.active
        for n, (i, s, e) in enumerate(todo):
            doc = docs[i]
            prompt = self.task.render(doc, s, e)
            response = list(self.llm([[prompt]]))[0][0]
            current = self.task.unit_spans(doc, s, e)
            before = [(sp.start, sp.end, sp.label_) for sp in current]
            counts["prompted"] += 1
            if gated:  # only the edits the gate accepts (task.unit_edits featurizes them)
                edits, _, dropped = self.task.unit_edits(doc, s, e, unit_entropy(doc, s, e), response, current)
                accepted = [] if edits is None else [ed for ed, ok in zip(edits, gate.accept(edits)) if ok]
                spans = None if edits is None else apply_edits(before, accepted)
                raw = None if edits is None else apply_edits(before, edits)
            else:
                spans, _, dropped = self.task.read_answer(doc, s, e, response)  # None: unreadable
                raw = spans
            counts["dropped_entities"] += dropped
            if spans is None:  # unreadable: keep the small model's prediction
                counts["unparseable"] += 1
                spans = raw = before
            elif gated:
                counts["edits"] = counts.get("edits", 0) + len(edits)  # type: ignore[arg-type]
                counts["rejected"] = counts.get("rejected", 0) + len(edits) - len(accepted)  # type: ignore[arg-type]
            key = _key((i, s, e))
            self.state["annotations"][key] = [[a - s, b - s, lab] for a, b, lab in spans]
            log = self.state.setdefault("annotations_by_iteration", {}).setdefault(str(it), {})
            log[key] = {"answer": [[a - s, b - s, lab] for a, b, lab in raw], "applied": self.state["annotations"][key]}
            done.append(key)
            if bar is not None:
                bar.update(1)
            if n % 8 == 7:
                self.save()
        if bar is not None:
            bar.close()
        self._clock("annotate", it, started)
        self.state["stage"] = "finetune"
        self.state.pop("annotated_now", None)
        self.save()

    def unit_example(self, nlp: Language, key: str, source: str = "annotations") -> Example:
        i, s, e = (int(x) for x in key.split(":"))
        pred = nlp.make_doc(self.texts[i])[s:e].as_doc()
        ref = pred.copy()
        ref.spans[MENTIONS_KEY] = [Span(ref, a, b, label=lab, span_id=f"A{n}") for n, (a, b, lab) in enumerate(self.state[source][key])]
        return Example(pred, ref)

    def finetune(self) -> None:
        """Fine-tune the tagger on every LLM annotation so far."""
        from ..pipeline.soft_prompt_tagger import find_tagger

        started = time.time()
        it = self.state["iteration"] + 1
        nlp = self.current_model()
        name, tagger = find_tagger(nlp)
        keys = sorted(self.state["annotations"])
        examples = [self.unit_example(nlp, key) for key in keys]
        examples += [self.unit_example(nlp, key, "rehearsal") for key in sorted(self.state.get("rehearsal", {}))]
        opt = retraining_optimizer(nlp, self.learn_rate)
        rng = random.Random(self.seed + it)
        bar = self.progress(f"iteration {it}: fine-tuning", self.epochs * len(examples)) if self.progress else None
        for _ in range(self.epochs):
            rng.shuffle(examples)
            for b in range(0, len(examples), self.batch_size):
                batch = examples[b : b + self.batch_size]
                tagger.update(batch, sgd=opt, drop=0.1, losses={})
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
        # per-token loss of each annotation under the fine-tuned tagger
        losses = {}
        for key in keys:
            eg = self.unit_example(nlp, key)
            loss, _ = tagger.get_loss([eg], None)
            losses[key] = float(loss) / max(1, len(eg.predicted))
        path = self.output / f"iter_{it}" / "model"
        partial = path.with_name("model.partial")  # a kill mid-write leaves no half model
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        nlp.to_disk(partial)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(partial, path)
        self.state["losses"] = losses
        self.state["finetuned"] = it
        self._loaded = (it, nlp)
        self._clock("finetune", it, started)
        self.state["stage"] = "filter"
        self.save()

    def filter(self) -> None:
        """CE-loss filter: clean annotations become the demo pool and leave
        the targets; then score the adapted model."""
        started = time.time()
        it = self.state["iteration"] + 1
        losses = self.state["losses"]
        nlp = self.current_model()
        clean = [k for k, v in losses.items() if v < self.tau]
        self.state["demos"] = [self._demo(nlp, k) for k in clean] or self.state["demos"]
        clean_set = set(clean)
        self.state["targets"] = [u for u in self.state["targets"] if _key(u) not in clean_set]
        self._clock("filter", it, started)
        score = self.evaluate(nlp, it)
        self.state["history"].append(
            {
                "iteration": it,
                "scores": score,
                "annotated": len(losses),
                "clean": len(clean),
                "targets_left": len(self.state["targets"]),
                "median_loss": round(sorted(losses.values())[len(losses) // 2], 4) if losses else None,
                "llm_counts": dict(self.state.get("llm_counts", {})),
            }
        )
        self.log(f"iteration {it}: {len(clean)}/{len(losses)} clean (tau {self.tau}); {len(self.state['targets'])} targets left; scores {score}")
        self.state["iteration"] = it
        self.state["stage"] = "annotate" if it < self.n_iter and self.state["targets"] else "done"
        self.save()

    def _clock(self, stage: str, it: int, started: float) -> None:
        """Seconds spent in a stage of an iteration (scoring excluded), summed
        over resumed runs: the cost of one adaptation iteration."""
        per = self.state.setdefault("seconds", {}).setdefault(str(it), {})
        per[stage] = round(per.get(stage, 0.0) + time.time() - started, 1)

    def _demo(self, nlp: Language, key: str) -> Dict[str, Any]:
        i, s, e = (int(x) for x in key.split(":"))
        unit = nlp.make_doc(self.texts[i])[s:e]
        ents = [[unit[a:b].text, lab] for a, b, lab in self.state["annotations"][key]]
        return {"text": unit.text.strip(), "entities": ents, "entropy": self.state["losses"][key]}

    def run(self) -> Dict[str, Any]:
        started = time.time()
        if not self.state:
            self.initialize()
        while self.state["stage"] != "done":
            stage = self.state["stage"]
            if stage == "annotate":
                self.annotate()
            elif stage == "finetune":
                self.finetune()
            elif stage == "filter":
                self.filter()
            else:
                raise ValueError(f"{self.state_path}: unknown stage {stage!r}")
        self.state["seconds_this_run"] = round(time.time() - started, 1)
        self.save()
        return self.state
