"""Fitting the do-no-harm edit gate on held-out data (issue 20).

The corrector's answers on the tagger's uncertain units are collected once
(``collect_answers``, a resumable JSONL file, because the LLM is the slow
part), split into edits and labelled right or wrong against gold
(``collect_edits``). ``fit_gate`` then chooses the acceptance threshold on
k-fold out-of-fold probabilities over documents (``gate.choose_threshold``:
1.0, apply nothing, when no threshold gains) and fits the final model on
every edit. ``clinie fit-gate`` and ``benchmarks/llm_edit_gate_tac.py``
both run these steps.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc

from .edits import EDIT_KINDS, Edit, SpanKey
from .gate import EditGate, choose_threshold, edit_outcome
from .tasks.ade_correct.task import ADECorrectTask
from .types import Response

Answers = List[List[Response]]


def collect_answers(
    task: ADECorrectTask,
    model: Callable[[Iterable[Iterable[Any]]], Iterable[Iterable[Any]]],
    docs: Sequence[Doc],
    path: Union[str, Path],
    *,
    progress: Optional[Callable[[int], None]] = None,
) -> Answers:
    """The model's answers to the task's prompts for each doc, one JSONL line
    per doc in ``path`` (with the task's entropy threshold and the
    responses' token log-probabilities). Docs already in ``path`` (same
    threshold) are not asked again, so a killed run resumes; a torn last
    line is asked again. ``progress(n_docs_done)`` after each doc."""
    path = Path(path)
    done = read_answers(path, expect_threshold=task.entropy_threshold) if path.exists() else []
    if len(done) > len(docs):
        raise ValueError(f"{path}: {len(done)} answered docs, but only {len(docs)} docs given (another corpus?)")
    with path.open("w", encoding="utf8") as out:  # rewrite what was read: drops a torn last line
        for n, responses in enumerate(done):
            out.write(answer_line(n, docs[n], task.entropy_threshold, responses))
        for n in range(len(done), len(docs)):
            prompts = list(task.generate_prompts([docs[n]]))[0][0]
            responses = [r if isinstance(r, Response) else Response(str(r)) for r in list(model([prompts]))[0]] if prompts else []
            done.append(responses)
            out.write(answer_line(n, docs[n], task.entropy_threshold, responses))
            out.flush()
            if progress is not None:
                progress(n + 1)
    return done


def answer_line(n: int, doc: Doc, threshold: float, responses: Sequence[Response]) -> str:
    return json.dumps({"doc": n, "doc_id": doc._.doc_id, "threshold": threshold,
                       "responses": [{"text": str(r), "tokens": getattr(r, "tokens", None)} for r in responses]}) + "\n"


def read_answers(path: Union[str, Path], *, expect_threshold: Optional[float] = None) -> Answers:
    """Answers written by ``collect_answers``; a torn last line (a killed
    run) is left out. ``expect_threshold``: refuse answers asked at another
    entropy threshold (they cover other units)."""
    rows = []
    lines = Path(path).read_text(encoding="utf8").splitlines()
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}, line {i + 1}: not JSON (an answers file of collect_answers?)") from None
    if rows and expect_threshold is not None and abs(float(rows[0]["threshold"]) - expect_threshold) > 1e-9:
        raise ValueError(f"{path}: answers for entropy threshold {rows[0]['threshold']}, the task uses {expect_threshold}")
    return [[Response(r["text"], tokens=r["tokens"]) for r in row["responses"]] for row in rows]


def answers_threshold(path: Union[str, Path]) -> float:
    """The entropy threshold the answers in ``path`` were asked at."""
    with Path(path).open(encoding="utf8") as f:
        return float(json.loads(f.readline())["threshold"])


def collect_edits(
    task: ADECorrectTask, gold: Sequence[Doc], tagged: Sequence[Doc], answers: Answers
) -> Tuple[List[Edit], List[bool], List[int]]:
    """Every edit the (ungated) answers make to the tagger's spans,
    featurized by ``task.gate``, with its outcome against the gold spans of
    the same doc (character offsets and label, so a gold corpus tokenized
    by another tokenizer version still lines up) and the doc's index."""
    edits: List[Edit] = []
    outcomes: List[bool] = []
    doc_index: List[int] = []
    for n, (g, doc, responses) in enumerate(zip(gold, tagged, answers)):
        if g.text != doc.text:
            raise ValueError(f"doc {n} ({g._.doc_id or 'no id'}): the tagged text differs from the gold text (same docs, same order needed)")
        gold_keys = {(s.start_char, s.end_char, s.label_) for s in g.spans.get(task.spans_key, [])}
        current = list(doc.spans[task.spans_key]) if task.spans_key in doc.spans else []
        for (start, end, entropy), response in zip(task.select(doc), responses):
            unit, _, _ = task.unit_edits(doc, start, end, entropy, response, current)
            for e in unit or []:
                edits.append(e)
                outcomes.append(edit_outcome(Edit(e.kind, char_key(doc, e.old), char_key(doc, e.new)), gold_keys))
                doc_index.append(n)
    return edits, outcomes, doc_index


def char_key(doc: Doc, key: Optional[SpanKey]) -> Optional[SpanKey]:
    """(token start, token end, label) as (char start, char end, label)."""
    if key is None:
        return None
    span = doc[key[0] : key[1]]
    return (span.start_char, span.end_char, key[2])


@dataclass
class GateFit:
    """A fitted gate and how it was chosen: ``fold_gates[k]`` was fitted
    without the docs ``n`` with ``n % folds == k`` (for cross-fitted dev
    scores), ``oof`` the out-of-fold P(right) of each edit."""

    gate: EditGate
    fold_gates: Dict[int, EditGate]
    edits: List[Edit]
    outcomes: List[bool]
    oof: List[float]
    report: Dict[str, Any] = field(default_factory=dict)


def fit_gate(
    task: ADECorrectTask,
    gold: Sequence[Doc],
    tagged: Sequence[Doc],
    answers: Answers,
    *,
    folds: int = 5,
    c: float = 1.0,
    select_threshold: bool = True,
) -> GateFit:
    """Fit ``task.gate`` (its dictionary and link scorer set) on the edits of
    ``answers``: the threshold from ``folds``-fold out-of-fold probabilities
    over documents (unless ``select_threshold`` is off), then the model on
    all edits. Raises ValueError when the answers make no edit."""
    gate = task.gate
    if gate is None:
        raise ValueError("the task has no gate to fit (clinie.ADECorrect.v2 has one)")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    edits, outcomes, doc_of = collect_edits(task, gold, tagged, answers)
    if not edits:
        raise ValueError(f"the LLM's answers on {len(answers)} docs make no edit to the tagger's spans: nothing to fit the gate on")
    oof = [1.0] * len(edits)
    fold_gates: Dict[int, EditGate] = {}
    for k in range(folds):
        held = [i for i, n in enumerate(doc_of) if n % folds == k]
        rest = [i for i, n in enumerate(doc_of) if n % folds != k]
        fold = EditGate(threshold=gate.threshold, dictionary=gate.dictionary, link_scorer=gate.link_scorer)
        if rest:
            fold.fit([edits[i] for i in rest], [outcomes[i] for i in rest], c=c)
        fold_gates[k] = fold
        for i, p in zip(held, fold.probabilities([edits[i] for i in held])):
            oof[i] = float(p)
    table: List[Dict[str, Any]] = []
    if select_threshold:
        gate.threshold, table = choose_threshold(oof, outcomes)
    for fold in fold_gates.values():
        fold.threshold = gate.threshold
    report = gate.fit(edits, outcomes, c=c)
    accepted = [p > gate.threshold for p in oof]
    report.update({
        "cv_folds": folds,
        "acceptance_threshold": gate.threshold,
        "threshold_selection": table,
        "cv_per_kind": {k: {"accepted": sum(a for e, a in zip(edits, accepted) if e.kind == k),
                            "accepted_right": sum(a and o for e, a, o in zip(edits, accepted, outcomes) if e.kind == k)}
                        for k in EDIT_KINDS},
    })
    gate.fit_report = report
    return GateFit(gate=gate, fold_gates=fold_gates, edits=edits, outcomes=outcomes, oof=oof, report=report)
