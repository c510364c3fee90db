"""Seed 001's correction task: the LLM sees the task description, one
high-confidence demonstration per class and the small model's prediction on
a low-confidence sentence, and returns the corrected entity list.

One prompt per uncertain unit (sentence), so a doc yields zero to n prompts;
spacy-llm's sharding interface carries them as ``(prompts, [doc])``. Units
are re-derived when responses come back (selection is a pure function of the
doc). Each answer is split into edits of the small model's spans inside
its unit (add, drop, relabel, re-boundary; ``llm.edits``); without a gate
all apply (the answer replaces the unit's spans), with a fitted
``llm.gate.EditGate`` only those it judges more likely right than wrong.
Answers that cannot be read keep the small model's spans and are counted in
``doc._.llm_corrections``; nothing here raises on model output, and only the
parsers' errors on that output are caught (a bug of ours still raises).
"""
import json
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import srsly
from spacy import util
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

from ....extensions import register_extensions, set_mention_attrs
from ....scoring import score_mentions
from ...confidence import label_confidences, string_confidences, unit_entropy, units
from ...demos import DemoPool, unit_examples
from ...edits import EDIT_KINDS, Edit, SpanKey, apply_edits, split_edits
from ...gate import EditGate, load_gate_data
from ...jinja import load_template
from ...parser import parse_index_lines, parse_json_entities
from ...resolver import LabelResolver, index_spans, locate_entities
from ...types import Prompt, Response

OUTPUT_FORMATS = ("json", "index")
# what the parsers raise on model output they cannot digest (json's nesting
# limit, int() of an over-long index); nothing else is caught
PARSE_ERRORS = (ValueError, RecursionError)
STAT_KEYS = ("units", "prompted", "parsed", "unparseable", "changed", "dropped_entities") + tuple(
    f"{what}_{kind}" for what in ("edits", "accepted") for kind in EDIT_KINDS
)


class ADECorrectTask:
    def __init__(
        self,
        *,
        labels: Sequence[str],
        description: str,
        label_definitions: Dict[str, str],
        template: str,
        system_template: str,
        output_format: str,
        spans_key: str,
        entropy_threshold: float,
        max_unit_tokens: int,
        max_units_per_doc: int,
        demos: DemoPool,
        label_synonyms: Dict[str, List[str]],
        constrain: bool,
        max_ngram: int,
        max_candidates: int,
        gate: Optional[EditGate] = None,
    ) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
        if not labels:
            raise ValueError("clinie.ADECorrect needs at least one label")
        register_extensions()
        self._labels = list(labels)
        self.description = description
        self.label_definitions = dict(label_definitions)
        self.template_name = template
        self.system_template = system_template
        self.output_format = output_format
        self.spans_key = spans_key
        self.entropy_threshold = entropy_threshold
        self.max_unit_tokens = max_unit_tokens
        self.max_units_per_doc = max_units_per_doc
        self.demos = demos
        self.label_synonyms = {k: list(v) for k, v in label_synonyms.items()}
        self.constrain = constrain
        self.max_ngram = max_ngram
        self.max_candidates = max_candidates
        self.gate = gate
        self._template = load_template(template)
        self._system = load_template(system_template).render().strip()
        self.resolver = LabelResolver(self._labels, self.label_synonyms)
        self.totals: Dict[str, int] = dict.fromkeys(STAT_KEYS, 0)

    # ------------------------------------------------------------ labels

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self._labels)

    def add_label(self, label: str, label_definition: Optional[str] = None) -> int:
        if label in self._labels:
            return 0
        self._labels.append(label)
        if label_definition:
            self.label_definitions[label] = label_definition
        self.resolver = LabelResolver(self._labels, self.label_synonyms)
        return 1

    def clear(self) -> None:
        self._labels = []

    # ------------------------------------------------------------ selection

    def select(self, doc: Doc) -> List[Tuple[int, int, float]]:
        """Units whose mean tag entropy exceeds the threshold, most uncertain
        first up to ``max_units_per_doc`` (0: no cap), returned in text order."""
        scored = [(s, e, unit_entropy(doc, s, e)) for s, e in units(doc, self.max_unit_tokens)]
        chosen = [u for u in scored if u[2] > self.entropy_threshold]
        if self.max_units_per_doc > 0:
            chosen = sorted(chosen, key=lambda u: -u[2])[: self.max_units_per_doc]
        return sorted(chosen)

    def unit_spans(self, doc: Doc, start: int, end: int) -> List[Span]:
        spans = doc.spans[self.spans_key] if self.spans_key in doc.spans else []
        return sorted((s for s in spans if s.start >= start and s.end <= end), key=lambda s: (s.start, s.end))

    # ------------------------------------------------------------ prompts

    def _json_answer(self, entities: Sequence[Tuple[str, str]]) -> str:
        return "\n".join(json.dumps({t: lab}, ensure_ascii=False) for t, lab in entities) or "{}"

    def _index_tokens(self, doc: Doc, start: int, end: int) -> Tuple[List[int], str]:
        words = [i for i in range(start, end) if not doc[i].is_space]
        return words, "\n".join(f"{n}: {doc[i].text}" for n, i in enumerate(words))

    def _index_answer(self, words: List[int], spans: Iterable[Tuple[int, int, str]], doc: Doc) -> str:
        pos = {t: n for n, t in enumerate(words)}
        lines = [f"{pos[i]} : {doc[i].text} : {lab}" for s, e, lab in spans for i in range(s, e) if i in pos]
        return "\n".join(lines) or "None"

    def candidates(self, doc: Doc, start: int, end: int) -> List[str]:
        """Strings the answer may name under constrained decoding: the unit's
        word n-grams (no punctuation at either end) and the small model's
        spans, in text order; fewer n-gram lengths when over the cap."""
        fixed = [s.text for s in self.unit_spans(doc, start, end) if '"' not in s.text and "\\" not in s.text]
        for n_max in range(self.max_ngram, 0, -1):
            seen: Dict[str, int] = {}
            for i in range(start, end):
                if doc[i].is_punct or doc[i].is_space:
                    continue
                for j in range(i + 1, min(end, i + n_max) + 1):
                    last = doc[j - 1]
                    if last.is_space or (j - 1 > i and "\n" in doc[j - 2].whitespace_):
                        break  # n-grams do not cross line breaks
                    text = doc[i:j].text
                    # llama.cpp's schema-to-grammar converter mis-escapes quotes and backslashes in keys
                    if not last.is_punct and '"' not in text and "\\" not in text:
                        seen.setdefault(text, i)
            for text in fixed:
                seen.setdefault(text, doc.text.find(text))
            if len(seen) <= self.max_candidates or n_max == 1:
                return sorted(seen, key=lambda t: seen[t])[: max(self.max_candidates, len(fixed))]
        return fixed

    def json_schema(self, doc: Doc, start: int, end: int) -> Dict[str, Any]:
        """One object, keys limited to the unit's candidate strings, values
        to the labels: a tiny model can only name text that is there."""
        return {
            "type": "object",
            "properties": {c: {"enum": list(self._labels)} for c in self.candidates(doc, start, end)},
            "additionalProperties": False,
        }

    def index_grammar(self, n_words: int) -> str:
        """GBNF for ``<Index> : <token> : <Label>`` lines (llama.cpp grammars)."""
        labels = " | ".join(json.dumps(lab) for lab in self._labels)
        idx = " | ".join(json.dumps(str(i)) for i in range(n_words)) or '"0"'
        return f'root ::= "None" | line+\nline ::= idx " : " [^\\n:]+ " : " label "\\n"\nidx ::= {idx}\nlabel ::= {labels}\n'

    def render(self, doc: Doc, start: int, end: int) -> Prompt:
        text = doc[start:end].text.strip()
        demos = self.demos.retrieve(text, self._labels) if len(self.demos) else []
        base = [(s.text, s.label_) for s in self.unit_spans(doc, start, end)]
        has_base = bool(doc._.tag_entropy) or self.spans_key in doc.spans
        ctx: Dict[str, Any] = {
            "labels": self._labels,
            "description": self.description,
            "label_definitions": self.label_definitions,
            "text": text,
        }
        schema = grammar = None
        if self.output_format == "json":
            ctx["examples"] = [{"text": d["text"], "answer": self._json_answer(d["entities"])} for d in demos]
            ctx["base_answer"] = self._json_answer(base) if has_base else None
            schema = self.json_schema(doc, start, end) if self.constrain else None
        else:
            words, listing = self._index_tokens(doc, start, end)
            ctx["tokens"] = listing
            ctx["examples"] = [{"tokens": self._demo_tokens(d), "answer": self._demo_index_answer(d)} for d in demos]
            spans = [(s.start, s.end, s.label_) for s in self.unit_spans(doc, start, end)]
            ctx["base_answer"] = self._index_answer(words, spans, doc) if has_base else None
            grammar = self.index_grammar(len(words)) if self.constrain else None
        return Prompt(self._template.render(**ctx).strip() + "\n", system=self._system, json_schema=schema, grammar=grammar, unit=text)

    def _demo_tokens(self, demo: Dict[str, Any]) -> str:
        return "\n".join(f"{n}: {w}" for n, w in enumerate(demo["text"].split()))

    def _demo_index_answer(self, demo: Dict[str, Any]) -> str:
        words = demo["text"].split()
        lines, cursor = [], 0
        for ent, lab in demo["entities"]:
            toks = ent.split()
            for i in range(cursor, len(words) - len(toks) + 1):
                if [w.strip(".,;:()") for w in words[i : i + len(toks)]] == [t.strip(".,;:()") for t in toks]:
                    lines += [f"{i + k} : {words[i + k]} : {lab}" for k in range(len(toks))]
                    cursor = i + len(toks)
                    break
        return "\n".join(lines) or "None"

    def generate_prompts(self, docs: Iterable[Doc], context_length: Optional[int] = None) -> Iterable[Tuple[Iterable[Prompt], Iterable[Doc]]]:
        for doc in docs:
            yield [self.render(doc, s, e) for s, e, _ in self.select(doc)], [doc]

    # ------------------------------------------------------------ responses

    def parse_responses(self, shards: Iterable[Iterable[Doc]], responses: Iterable[Iterable[Union[str, Response]]]) -> Iterable[Doc]:
        for doc_shards, doc_responses in zip(shards, responses):
            doc = list(doc_shards)[0]
            self.apply(doc, self.select(doc), list(doc_responses))
            yield doc

    def read_answer(self, doc: Doc, start: int, end: int, response: Union[str, Response]) -> Tuple[Optional[List[Tuple[int, int, str]]], List[Optional[float]], int]:
        """(token spans or None when unreadable, the LLM label confidence of
        each span, entities dropped by the resolver)."""
        spans, confs, _, dropped = self.read_answer_details(doc, start, end, response)
        return spans, confs, dropped

    def read_answer_details(
        self, doc: Doc, start: int, end: int, response: Union[str, Response]
    ) -> Tuple[Optional[List[Tuple[int, int, str]]], List[Optional[float]], List[Optional[float]], int]:
        """``read_answer`` plus, per span, the LLM's probability for the first
        token of the string it named (json answers with log-probabilities)."""
        tokens = getattr(response, "tokens", None)
        if self.output_format == "json":
            try:
                pairs = parse_json_entities(response)
            except PARSE_ERRORS:  # e.g. nesting too deep for the json module
                pairs = None
            if pairs is None:
                return None, [], [], 0
            resolved = [(t, raw, self.resolver(raw)) for t, raw in pairs]
            kept = [(t, lab) for t, _, lab in resolved if lab is not None]
            confs = label_confidences(tokens, str(response), self._labels, [raw for _, raw, lab in resolved if lab is not None])
            probs = string_confidences(tokens, [t for t, _ in kept])
            spans, missing, found = locate_entities(doc, start, end, kept)
            return spans, [confs[i] for i in found], [probs[i] for i in found], (len(pairs) - len(kept)) + missing
        try:
            lines = parse_index_lines(response)
        except PARSE_ERRORS:  # e.g. an index too long for int()
            lines = None
        if lines is None:
            return None, [], [], 0
        spans, dropped = index_spans(doc, start, end, lines, self.resolver)
        return spans, [None] * len(spans), [None] * len(spans), dropped

    def unit_edits(
        self, doc: Doc, start: int, end: int, entropy: float, response: Union[str, Response], current: Sequence[Span]
    ) -> Tuple[Optional[List[Edit]], Dict[SpanKey, Optional[float]], int]:
        """The edits one answer makes to the unit's spans in ``current``
        (None when unreadable), featurized when there is a gate, with the
        LLM label confidence of each answered span and the resolver's drops."""
        spans, confs, probs, dropped = self.read_answer_details(doc, start, end, response)
        if spans is None:
            return None, {}, dropped
        old = {(s.start, s.end, s.label_): s for s in current if s.start >= start and s.end <= end}
        label_conf: Dict[SpanKey, Optional[float]] = {}
        llm_prob: Dict[SpanKey, Optional[float]] = {}
        for k, key in enumerate(spans):  # one confidence per span, the first answer naming it
            label_conf.setdefault(key, confs[k] if k < len(confs) else None)
            p, c = (probs[k] if k < len(probs) else None), label_conf[key]
            llm_prob.setdefault(key, p * c if p is not None and c is not None else (p if p is not None else c))
        edits = split_edits(list(old), list(label_conf))
        if self.gate is not None and edits:
            texts = {key: doc[key[0] : key[1]].text for key in list(old) + list(label_conf)}
            tagger_conf = {key: (s._.attributes or {}).get("confidence") for key, s in old.items()}
            self.gate.featurize(edits, texts, tagger_conf, llm_prob, entropy)
        return edits, label_conf, dropped

    def apply(self, doc: Doc, selected: Sequence[Tuple[int, int, float]], responses: Sequence[Union[str, Response]]) -> None:
        stats = dict.fromkeys(STAT_KEYS, 0)
        stats["units"] = len(units(doc, self.max_unit_tokens))
        stats["prompted"] = len(selected)
        current = list(doc.spans[self.spans_key]) if self.spans_key in doc.spans else []
        n_new = 0
        for (start, end, entropy), response in zip(selected, responses):
            # read_answer turns unreadable model output into None; anything it
            # raises is a bug of ours and must not be counted as "unparseable"
            edits, label_conf, dropped = self.unit_edits(doc, start, end, entropy, response, current)
            stats["dropped_entities"] += dropped
            if edits is None:
                stats["unparseable"] += 1
                continue
            stats["parsed"] += 1
            old = [s for s in current if s.start >= start and s.end <= end]
            old_keys = {(s.start, s.end, s.label_): s for s in old}
            accept = self.gate.accept(edits) if self.gate is not None else [True] * len(edits)
            gate_p = self.gate.probabilities(edits) if self.gate is not None and self.gate.active else None
            p_right: Dict[SpanKey, float] = {}
            for n, (edit, ok) in enumerate(zip(edits, accept)):
                stats[f"edits_{edit.kind}"] += 1
                stats[f"accepted_{edit.kind}"] += int(ok)
                if gate_p is not None and edit.new is not None:
                    p_right[edit.new] = round(float(gate_p[n]), 4)
            kept = set(apply_edits(list(old_keys), [e for e, ok in zip(edits, accept) if ok]))
            new_spans = [s for key, s in old_keys.items() if key in kept]
            for key in label_conf:  # answer order, as the LLM named them
                if key not in kept or key in old_keys:
                    continue
                n_new += 1
                s, e, lab = key
                span = Span(doc, s, e, label=lab, span_id=f"L{n_new}")
                conf = label_conf[key]
                attrs = {"source": "llm", "unit_entropy": round(entropy, 4), **({"llm_confidence": conf} if conf is not None else {})}
                if key in p_right:
                    attrs["gate_probability"] = p_right[key]
                set_mention_attrs(doc, span.id_, attributes=attrs)
                new_spans.append(span)
            if kept != set(old_keys):
                stats["changed"] += 1
            current = [s for s in current if s not in old] + new_spans
        if stats["prompted"]:
            current.sort(key=lambda s: (s.start, s.end))
            doc.spans[self.spans_key] = current
        doc._.llm_corrections = stats
        for k, v in stats.items():
            self.totals[k] += v

    # ------------------------------------------------------------ scoring, io

    def scorer(self, examples: Iterable[Any]) -> Dict[str, Any]:
        return score_mentions(examples, spans_key=self.spans_key)

    def initialize(
        self, get_examples: Optional[Callable[[], Iterable[Example]]] = None, nlp: Optional[Language] = None, n_demos: int = 0, demo_path: Optional[str] = None,
        gate_path: Optional[str] = None,
    ) -> None:
        """Fill the demonstration pool with up to ``n_demos`` sentences that
        have gold spans: from the .spacy corpus ``demo_path`` (e.g. the
        training split), else from ``get_examples()``. ``gate_path``: a
        fitted edit gate (``EditGate.to_disk``) to load into the task's gate."""
        if gate_path:
            if self.gate is None:
                raise ValueError("gate_path given but the task has no gate (set gate = {\"@llm_misc\": \"clinie.EditGate.v1\"})")
            data, where = load_gate_data(gate_path)
            self.gate.from_dict(data, where=where)
        if not n_demos:
            return
        if demo_path:
            from spacy.tokens import DocBin

            vocab = nlp.vocab if nlp is not None else None
            from spacy.vocab import Vocab

            refs = DocBin().from_disk(demo_path).get_docs(vocab or Vocab())
        elif get_examples is not None:
            refs = (eg.reference for eg in get_examples())
        else:
            return
        pool: List[Dict[str, Any]] = []
        for ref in refs:
            pool += [ex for ex, _ in unit_examples(ref, self.spans_key, self.max_unit_tokens) if ex["entities"]]
            if len(pool) >= n_demos:
                break
        self.demos.replace(pool[:n_demos])

    def to_bytes(self, *, exclude: Tuple[str, ...] = tuple()) -> bytes:
        data: Dict[str, Any] = {"labels": self._labels, "demos": self.demos.examples}
        if self.gate is not None:
            data["gate"] = self.gate.to_dict()
        return srsly.msgpack_dumps(data)

    def from_bytes(self, bytes_data: bytes, *, exclude: Tuple[str, ...] = tuple()) -> "ADECorrectTask":
        data = srsly.msgpack_loads(bytes_data)
        self._labels = list(data["labels"])
        self.resolver = LabelResolver(self._labels, self.label_synonyms)
        self.demos.replace(data["demos"])
        if self.gate is not None and data.get("gate") is not None:
            self.gate.from_dict(data["gate"])
        return self

    def to_disk(self, path: Path, *, exclude: Tuple[str, ...] = tuple()) -> None:
        path = Path(path)
        writers: Dict[str, Callable[[Path], None]] = {
            "cfg.json": lambda p: srsly.write_json(p, {"labels": self._labels}),
            "demos": lambda p: self.demos.to_disk(p),
        }
        if self.gate is not None:
            writers["gate.json"] = lambda p: self.gate.to_disk(p)  # type: ignore[union-attr]
        util.to_disk(path, writers, exclude)

    def from_disk(self, path: Path, *, exclude: Tuple[str, ...] = tuple()) -> "ADECorrectTask":
        path = Path(path)
        if (path / "cfg.json").exists():
            self._labels = list(srsly.read_json(path / "cfg.json")["labels"])
            self.resolver = LabelResolver(self._labels, self.label_synonyms)
        self.demos.from_disk(path / "demos")
        if self.gate is not None and (path / "gate.json").exists():
            self.gate.from_disk(path / "gate.json")
        return self
