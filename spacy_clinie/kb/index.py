"""The MedDRA index and its candidates: exact keys, a character n-gram
TF-IDF matrix and, with an encoder, term embeddings, built once at
``initialize`` and serialised with the pipeline (``kb/``); the candidate
generator ranks LLTs and PTs for a mention (``clinie.MeddraCandidates.v1``)."""
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.util import registry

from ..errors import FormatError
from .normalize import TermNormalizer
from .terms import Term

# An encoder maps texts to unit-length vectors (ml.sentence_encoder's
# SentenceEncoder, which needs torch); the index only calls it, so a linker
# with ``encoder = null`` imports no torch.
Encoder = Callable[[Sequence[str]], numpy.ndarray]


class MeddraIndex:
    """Lookup structures over a terms table: exact keys (surface, normalised,
    bag of words, acronym initials), a character n-gram TF-IDF matrix and,
    with an encoder, unit-length term embeddings."""

    def __init__(self, terms: List[Term], normalizer: TermNormalizer, *, ngram_range: Tuple[int, int] = (2, 4)) -> None:
        if not terms:
            raise ValueError("a MedDRA index needs at least one term")
        self.terms = terms
        self.normalizer = normalizer
        self.ngram_range = tuple(ngram_range)
        self.vectorizer: Any = None
        self.char_matrix: Any = None
        self.embeddings: Optional[numpy.ndarray] = None
        self.encoder_name: Optional[str] = None
        self._build_keys()

    def _build_keys(self) -> None:
        self.by_surface: Dict[str, List[int]] = defaultdict(list)
        self.by_key: Dict[str, List[int]] = defaultdict(list)
        self.by_bag: Dict[str, List[int]] = defaultdict(list)
        self.by_initials: Dict[str, List[int]] = defaultdict(list)
        norm = self.normalizer
        for i, t in enumerate(self.terms):
            self.by_surface[norm.surface(t.term)].append(i)
            key = norm.key(t.term)
            self.by_key[key].append(i)
            self.by_bag[norm.bag(t.term)].append(i)
            words = [w for w in key.split() if w not in norm.stop_words]
            if len(words) >= 2:
                self.by_initials["".join(w[0] for w in words)].append(i)

    def keys_for_matrix(self, texts: Sequence[str]) -> List[str]:
        return [self.normalizer.key(t) for t in texts]

    def build(self, encoder: Optional[Encoder] = None) -> "MeddraIndex":
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, sublinear_tf=True, dtype=numpy.float32)
        self.char_matrix = self.vectorizer.fit_transform(self.keys_for_matrix([t.term for t in self.terms])).tocsr()
        if encoder is not None:
            self.embeddings = encoder([t.term for t in self.terms])
            self.encoder_name = encoder.model_name
        return self

    def char_vectors(self, texts: Sequence[str]) -> Any:
        return self.vectorizer.transform(self.keys_for_matrix(texts))

    # -- serialisation: plain data (msgpack / .npy / .npz), no pickle
    def to_dict(self) -> Dict[str, Any]:
        m = self.char_matrix
        return {
            "terms": [asdict(t) for t in self.terms],
            "meta": {
                "ngram_range": list(self.ngram_range),
                "encoder": self.encoder_name,
                "n_terms": len(self.terms),
                "vocabulary": {k: int(v) for k, v in self.vectorizer.vocabulary_.items()},
            },
            "idf": numpy.asarray(self.vectorizer.idf_, dtype="float32"),
            "char_matrix": {"data": m.data, "indices": m.indices, "indptr": m.indptr, "shape": list(m.shape)},
            "embeddings": self.embeddings,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any], normalizer: TermNormalizer, *, where: str = "kb") -> "MeddraIndex":
        import scipy.sparse
        from sklearn.feature_extraction.text import TfidfVectorizer

        meta = data["meta"]
        terms = [Term(**t) for t in data["terms"]]
        if len(terms) != meta["n_terms"]:
            raise FormatError(f"expected {meta['n_terms']} terms, found {len(terms)}", path=where)
        index = cls(terms, normalizer, ngram_range=tuple(meta["ngram_range"]))
        vec = TfidfVectorizer(
            analyzer="char_wb", ngram_range=index.ngram_range, sublinear_tf=True, dtype=numpy.float32, vocabulary=meta["vocabulary"]
        )
        vec.idf_ = numpy.asarray(data["idf"], dtype="float64")
        index.vectorizer = vec
        cm = data["char_matrix"]
        index.char_matrix = scipy.sparse.csr_matrix((cm["data"], cm["indices"], cm["indptr"]), shape=tuple(cm["shape"]))
        if data.get("embeddings") is not None:
            index.embeddings = numpy.asarray(data["embeddings"], dtype="float32")
            index.encoder_name = meta["encoder"]
        return index

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        with (path / "terms.jsonl").open("w", encoding="utf8") as f:
            for t in data["terms"]:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
        (path / "meta.json").write_text(json.dumps(data["meta"], ensure_ascii=False), encoding="utf8")
        numpy.save(path / "idf.npy", data["idf"])
        cm = data["char_matrix"]
        numpy.savez(path / "char_matrix.npz", data=cm["data"], indices=cm["indices"], indptr=cm["indptr"], shape=numpy.array(cm["shape"]))
        if data["embeddings"] is not None:
            numpy.save(path / "embeddings.npy", data["embeddings"])

    @classmethod
    def from_disk(cls, path: Union[str, Path], normalizer: TermNormalizer) -> "MeddraIndex":
        path = Path(path)
        for name in ("meta.json", "terms.jsonl", "idf.npy", "char_matrix.npz"):
            if not (path / name).exists():
                raise FormatError(f"incomplete MedDRA index: {name} is missing", path=path)
        with (path / "terms.jsonl").open(encoding="utf8") as f:
            terms = [json.loads(line) for line in f if line.strip()]
        with numpy.load(path / "char_matrix.npz") as z:
            cm = {"data": z["data"], "indices": z["indices"], "indptr": z["indptr"], "shape": z["shape"].tolist()}
        emb = path / "embeddings.npy"
        data = {
            "terms": terms,
            "meta": json.loads((path / "meta.json").read_text(encoding="utf8")),
            "idf": numpy.load(path / "idf.npy"),
            "char_matrix": cm,
            "embeddings": numpy.load(emb) if emb.exists() else None,
        }
        return cls.from_dict(data, normalizer, where=str(path))


# ---------------------------------------------------------------- candidates


@dataclass
class Candidate:
    """A concept (LLT and its PT) for one mention, with the score of its best
    matching term and how it matched (``surface``, ``key``, ``bag``,
    ``acronym`` or ``similarity``)."""

    llt_id: str
    llt: str
    pt_id: str
    pt: str
    soc_id: str
    soc: str
    score: float
    method: str
    term: str

    def to_dict(self) -> Dict[str, Any]:
        out = {
            "meddra_pt": self.pt,
            "meddra_pt_id": self.pt_id,
            "meddra_llt": self.llt,
            "meddra_llt_id": self.llt_id,
            "score": round(float(self.score), 4),
            "method": self.method,
            "term": self.term,
        }
        if self.soc_id:
            out["soc"], out["soc_id"] = self.soc, self.soc_id
        return out


def _term_priority(t: Term) -> Tuple[int, int, int]:
    """Among terms tied on score: corpus-frequent synonyms first, then current
    LLTs, then LLTs whose name is the term itself."""
    return (t.count, int(t.current), int(t.term.lower() == t.llt.lower()))


class MeddraCandidateGenerator:
    """Candidates in two stages. Exact keys first: the literal surface
    string, then the normalised key, the bag of content words and acronym
    initials, each with a fixed score. Then similarity for everything: a
    weighted mix of character n-gram TF-IDF cosine (spelling variants,
    word order) and embedding cosine (paraphrases), over the top terms of
    each. Terms are grouped into concepts (LLT) keeping the best score."""

    def __init__(
        self,
        *,
        exact_scores: Dict[str, float],
        char_weight: float,
        embed_weight: float,
        n_char: int,
        n_embed: int,
        embed_all: bool = False,
    ) -> None:
        for method in ("surface", "key", "bag", "acronym"):
            if method not in exact_scores:
                raise ValueError(f"exact_scores needs a score for {method!r}")
        if char_weight < 0 or embed_weight < 0 or char_weight + embed_weight <= 0:
            raise ValueError("char_weight and embed_weight must be >= 0 and not both 0")
        self.exact_scores = exact_scores
        self.char_weight = char_weight
        self.embed_weight = embed_weight
        self.n_char = n_char
        self.n_embed = n_embed
        self.embed_all = embed_all

    @staticmethod
    def _offer(scores: Dict[int, Tuple[float, str]], term_ids: Iterable[int], score: float, method: str) -> None:
        for i in term_ids:
            if i not in scores or scores[i][0] < score:
                scores[i] = (score, method)

    def __call__(
        self, index: MeddraIndex, texts: Sequence[str], *, top_k: int, encoder: Optional[Encoder] = None
    ) -> List[List[Candidate]]:
        if not texts:
            return []
        norm = index.normalizer
        char_q = index.char_vectors(texts)
        char_sims = (char_q @ index.char_matrix.T).tocsr()
        exact: List[Dict[int, Tuple[float, str]]] = []
        for text in texts:
            scores: Dict[int, Tuple[float, str]] = {}
            key, bag = norm.key(text), norm.bag(text)
            self._offer(scores, index.by_surface.get(norm.surface(text), ()), self.exact_scores["surface"], "surface")
            self._offer(scores, index.by_key.get(key, ()), self.exact_scores["key"], "key")
            self._offer(scores, index.by_bag.get(bag, ()), self.exact_scores["bag"], "bag")
            if " " not in key and key in index.by_initials:
                self._offer(scores, index.by_initials[key], self.exact_scores["acronym"], "acronym")
            exact.append(scores)
        # Embeddings are the costly part: by default only for mentions without
        # a surface or normalised-key match (those are settled already).
        emb_rows: Dict[int, int] = {}
        emb_sims = None
        if encoder is not None and index.embeddings is not None and self.embed_weight > 0:
            for row, scores in enumerate(exact):
                if self.embed_all or not any(m in ("surface", "key") for _, m in scores.values()):
                    emb_rows[row] = len(emb_rows)
            if emb_rows:
                emb_sims = encoder([texts[r] for r in emb_rows]) @ index.embeddings.T
        results: List[List[Candidate]] = []
        for row, scores in enumerate(exact):
            # similarity over the union of each method's nearest terms
            c_row = char_sims.getrow(row)
            char_by_term = dict(zip(c_row.indices.tolist(), c_row.data.tolist()))
            pool = set(sorted(char_by_term, key=char_by_term.__getitem__, reverse=True)[: self.n_char])
            e_row = emb_sims[emb_rows[row]] if emb_sims is not None and row in emb_rows else None
            if e_row is not None:
                n = min(self.n_embed, len(e_row))
                pool.update(numpy.argpartition(-e_row, n - 1)[:n].tolist())
            total = self.char_weight + (self.embed_weight if e_row is not None else 0.0)
            for i in pool - scores.keys():  # an exact match keeps its method and score
                sim = self.char_weight * char_by_term.get(i, 0.0)
                if e_row is not None:
                    sim += self.embed_weight * max(float(e_row[i]), 0.0)
                self._offer(scores, (i,), sim / total, "similarity")
            # group terms into concepts (LLT); the best term speaks for it
            best: Dict[str, Tuple[float, Tuple[int, int, int], int, str]] = {}
            for i, (score, method) in scores.items():
                t = index.terms[i]
                cand = (score, _term_priority(t), i, method)
                if t.llt_id not in best or cand[:2] > best[t.llt_id][:2]:
                    best[t.llt_id] = cand
            ranked = sorted(best.values(), key=lambda c: (c[0], c[1]), reverse=True)[:top_k]
            out = []
            for score, _, i, method in ranked:
                t = index.terms[i]
                out.append(Candidate(t.llt_id, t.llt, t.pt_id, t.pt, t.soc_id, t.soc, score, method, t.term))
            results.append(out)
        return results


@registry.misc("clinie.MeddraCandidates.v1")
def make_meddra_candidates(
    exact_scores: Dict[str, float] = {"surface": 1.0, "key": 0.99, "bag": 0.97, "acronym": 0.9},
    char_weight: float = 0.5,
    embed_weight: float = 0.5,
    n_char: int = 30,
    n_embed: int = 30,
    embed_all: bool = False,
) -> MeddraCandidateGenerator:
    """Candidate generator for ``clinie_meddra_linker``: exact keys, then a
    mix of character n-gram TF-IDF and embedding cosine (weights here).
    ``embed_all``: embed every mention, not only those without an exact
    surface or normalised match (slower; changes only the lower ranks)."""
    return MeddraCandidateGenerator(
        exact_scores=exact_scores,
        char_weight=char_weight,
        embed_weight=embed_weight,
        n_char=n_char,
        n_embed=n_embed,
        embed_all=embed_all,
    )
