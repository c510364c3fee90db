"""What the web app serves, without the web: instances, predictions, gold,
attention and decisions, in review order.

Review order is instance-major: (instance 0, concepts), (instance 0, aux),
(instance 1, concepts), ... An *item* is one (instance, task) pair; its
position in that order is what the app's URLs and the progress counter use.
"""
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from ..extensions import register_extensions
from .instances import Instance, make_instances
from .store import FeedbackStore, fingerprint


@dataclass
class Prediction:
    tags: Dict[str, List[str]]  # task -> tag name per token
    probs: Dict[str, List[float]]  # task -> probability of the predicted tag


REVIEW_ORDERS = ("document", "confidence")


class ReviewSession:
    """Instances of DATA under review with MODEL's tagger, bound to a store."""

    def __init__(
        self,
        nlp: Language,
        docs: Sequence[Doc],
        store: FeedbackStore,
        *,
        data_path: Optional[Union[str, Path]] = None,
        model_name: str = "",
        max_tokens: int = 64,
        tagger: Optional[str] = None,
        reviewer: Optional[str] = None,
        cache_size: int = 256,
        order: str = "document",
    ) -> None:
        register_extensions()
        if order not in REVIEW_ORDERS:
            raise ValueError(f"unknown review order {order!r}; choose one of {', '.join(REVIEW_ORDERS)}")
        self.nlp = nlp
        from ..pipeline.soft_prompt_tagger import find_tagger

        self.tagger_name, self.pipe = find_tagger(nlp, tagger)
        self.tag_names: Dict[str, List[str]] = self.pipe.tag_names
        self.tasks = list(self.tag_names)
        self.instances: List[Instance] = make_instances(docs, max_tokens)
        self.order = order
        if order == "confidence":
            self.instances = self._least_confident_first(self.instances)
        self.store = store
        self.reviewer = reviewer
        self.model_name = model_name
        self.data_name = str(data_path or "")
        meta = {
            "tag_names": self.tag_names,
            "aux_task": self.pipe.cfg["aux_task"],
            "tasks": self.tasks,
            "n_instances": len(self.instances),
            "max_tokens": max_tokens,
            "model": model_name,
            "data": self.data_name,
        }
        if order != "document":  # positions differ: a store is bound to its order
            meta["order"] = order
        if data_path is not None:
            meta["fingerprint"] = fingerprint(data_path, max_tokens) + ("" if order == "document" else f":{order}")
        store.bind(meta)
        self._cache: "OrderedDict[int, Tuple[Prediction, Dict[str, List[str]]]]" = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # one model call at a time (server threads)

    # ------------------------------------------------------------ order

    def instance_confidence(self, docs: List[Doc]) -> List[float]:
        """How sure the pipeline is of each instance: the lowest confidence
        of its predicted mentions (calibrated when the pipeline has a fitted
        ``clinie_confidence_calibrator``), or, with no mention, exp(-H) of
        its most uncertain token (H: tag entropy in nats)."""
        from ..pipeline.calibrator import ConfidenceCalibrator

        steps = [p for n, p in self.nlp.pipeline if n == self.tagger_name or isinstance(p, ConfidenceCalibrator)]
        for proc in steps:
            docs = list(proc.pipe(docs))
        key = self.pipe.cfg["spans_key"]
        out = []
        for doc in docs:
            confs = [float((s._.attributes or {}).get("confidence", 1.0)) for s in doc.spans.get(key, [])]
            if confs:
                out.append(min(confs))
            else:
                out.append(float(numpy.exp(-max(doc._.tag_entropy or [0.0]))))
        return out

    def _least_confident_first(self, instances: List[Instance]) -> List[Instance]:
        """Instances sorted so that an expert sees first what the model is
        least sure of (ties keep document order)."""
        confidence: List[float] = []
        for start in range(0, len(instances), 32):
            chunk = instances[start : start + 32]
            confidence.extend(self.instance_confidence([self._blank(inst) for inst in chunk]))
        ranked = sorted(range(len(instances)), key=lambda i: (confidence[i], i))
        for i in ranked:
            instances[i].confidence = confidence[i]
        return [instances[i] for i in ranked]

    def __len__(self) -> int:
        return len(self.instances) * len(self.tasks)

    def item(self, position: int) -> Tuple[int, str]:
        if not 0 <= position < len(self):
            raise IndexError(position)
        return position // len(self.tasks), self.tasks[position % len(self.tasks)]

    def position(self, index: int, task: str) -> int:
        return index * len(self.tasks) + self.tasks.index(task)

    def first_unreviewed(self) -> Optional[int]:
        """Position of the first item without a decision (None: all done)."""
        decided = self.store.decided()
        for pos in range(len(self)):
            i, task = self.item(pos)
            if task not in decided.get(self.instances[i].key, {}):
                return pos
        return None

    def progress(self) -> Dict[str, Any]:
        decided = self.store.decided()
        keys = {inst.key for inst in self.instances}
        per_task = {t: sum(1 for k, d in decided.items() if k in keys and t in d) for t in self.tasks}
        complete = sum(1 for inst in self.instances if all(t in decided.get(inst.key, {}) for t in self.tasks))
        return {
            "reviewed": sum(per_task.values()),
            "total": len(self),
            "per_task": per_task,
            "instances_complete": complete,
            "instances": len(self.instances),
        }

    # ------------------------------------------------------------ content

    def _blank(self, inst: Instance) -> Doc:
        return Doc(self.nlp.vocab, words=inst.words, spaces=inst.spaces)

    def analyse(self, index: int) -> Tuple[Prediction, Dict[str, List[str]]]:
        """The tagger's tags and the gold tags of instance ``index`` (cached:
        the tagger runs once per instance)."""
        with self._lock:
            return self._analyse(index)

    def _analyse(self, index: int) -> Tuple[Prediction, Dict[str, List[str]]]:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        inst = self.instances[index]
        output = self.pipe.predict([self._blank(inst)])
        tags, probs = {}, {}
        for task in self.tasks:
            idx = output.tags[0][task]
            p = numpy.asarray(output.probs[0][task])
            tags[task] = [self.tag_names[task][k] for k in idx]
            probs[task] = [float(p[i, k]) for i, k in enumerate(idx)] if len(p) else []
        # gold exactly as the tagger's training sees it (BIO, overlaps resolved)
        gold_idx = self.pipe.gold_tags(Example(self._blank(inst), inst.doc))
        # a task without gold (e.g. no mention kinds) shows as all O, what its training would have seen before
        gold = {t: [self.tag_names[t][k] for k in gold_idx[t]] if t in gold_idx else ["O"] * len(inst.words) for t in self.tasks}
        result = (Prediction(tags, probs), gold)
        self._cache[index] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def attention(self, index: int, task: str):
        from .attention import compute_attention

        with self._lock:
            return compute_attention(self.pipe, self._blank(self.instances[index]), task)

    # ------------------------------------------------------------ decisions

    def check_labels(self, task: str, labels: Sequence[Any], n_tokens: int) -> List[str]:
        """Labels as tag names of ``task``, one per token, or ValueError."""
        if len(labels) != n_tokens:
            raise ValueError(f"{len(labels)} labels for {n_tokens} tokens")
        allowed = set(self.tag_names[task])
        bad = [str(x) for x in labels if not isinstance(x, str) or x not in allowed]
        if bad:
            raise ValueError(f"unknown {task} labels: {', '.join(sorted(set(bad))[:5])} (allowed: {', '.join(self.tag_names[task])})")
        return list(labels)

    def decide(self, index: int, task: str, action: str, labels: Optional[Sequence[Any]] = None) -> int:
        """Record a decision; ``labels`` are needed for expert and upload."""
        inst = self.instances[index]
        pred, gold = self.analyse(index)
        if action == "ok":
            final = pred.tags[task]
        elif action == "gold":
            final = gold[task]
        elif action in ("expert", "upload"):
            final = self.check_labels(task, labels or [], len(inst.words))
        else:
            raise ValueError(f"unknown action {action!r}")
        return self.store.record(
            instance=inst.key,
            position=index,
            task=task,
            action=action,
            labels=final,
            predicted=pred.tags[task],
            gold=gold[task],
            words=inst.words,
            spaces=inst.spaces,
            doc_id=inst.doc._.doc_id,
            reviewer=self.reviewer,
        )


def open_session(
    model: Union[str, Path],
    data: Union[str, Path],
    store: Union[str, Path],
    *,
    max_tokens: int = 64,
    tagger: Optional[str] = None,
    reviewer: Optional[str] = None,
    order: str = "document",
) -> ReviewSession:
    """Load MODEL (a pipeline folder or package) and DATA (.spacy)."""
    import spacy

    from ..readers import load_docs

    nlp = spacy.load(model)
    docs = load_docs(data, nlp)
    return ReviewSession(
        nlp, docs, FeedbackStore(store), data_path=data, model_name=str(model),
        max_tokens=max_tokens, tagger=tagger, reviewer=reviewer, order=order,
    )
