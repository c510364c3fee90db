"""Helpers shared by the readers: safe text loading, mention placement, reports."""
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..errors import Errors, FormatError
from ..extensions import MENTIONS_KEY, register_extensions, set_mention_attrs

Fragment = Tuple[int, int]


@dataclass
class MentionSpec:
    """A mention as read from a source file, before it becomes a Span."""

    id: str
    label: str
    fragments: List[Fragment]
    text: Optional[str] = None  # the annotated string, checked against the offsets
    attrs: Dict[str, Any] = field(default_factory=dict)
    record: Optional[str] = None  # where it came from, for error messages


@dataclass
class Report:
    """What a conversion kept, merged and skipped, and why.

    ``counts`` reconcile with the source; ``skipped`` lists each dropped
    record with the file, the record and the reason.
    """

    counts: Counter = field(default_factory=Counter)
    skipped: List[Dict[str, Any]] = field(default_factory=list)

    def skip(self, error: FormatError, kind: str) -> None:
        self.counts[f"skipped_{kind}"] += 1
        self.skipped.append({"kind": kind, **error.to_dict()})

    def merge(self, other: "Report") -> None:
        self.counts.update(other.counts)
        self.skipped.extend(other.skipped)

    def to_dict(self) -> Dict[str, Any]:
        return {"counts": dict(sorted(self.counts.items())), "skipped": self.skipped}


def read_text(path: Union[str, Path]) -> str:
    """Read a UTF-8 file, failing clearly on empty or undecodable files."""
    path = Path(path)
    data = path.read_bytes()
    if not data.strip():
        raise FormatError(Errors.E001, path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(Errors.E002.format(pos=err.start, reason=err.reason), path=path)


def check_length(
    nlp: Language, text: str, *, path: Optional[Union[str, Path]], record: Optional[str] = None
) -> None:
    """A text spaCy would refuse to tokenise (E088) is a bad record of ours,
    reported with the file and record like any other."""
    if len(text) > nlp.max_length:
        raise FormatError(Errors.E017.format(n=len(text), limit=nlp.max_length), path=path, record=record)


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def check_fragments(
    text: str,
    fragments: Sequence[Fragment],
    expected: Optional[str],
    *,
    path: Optional[Union[str, Path]],
    record: str,
) -> None:
    """Offsets inside the text, and the text at the offsets equal to the annotation.

    A contiguous mention must match exactly up to case and whitespace; for a
    discontiguous one each fragment must occur, in order, in the annotated
    string (formats join fragments differently).
    """
    if not fragments:
        raise FormatError(Errors.E006.format(field="offsets"), path=path, record=record)
    for start, end in fragments:
        if start < 0 or end > len(text) or start >= end:
            raise FormatError(
                Errors.E004.format(start=start, end=end, length=len(text)),
                path=path,
                record=record,
            )
    if expected is None:
        return
    found = [text[s:e] for s, e in fragments]
    if len(fragments) == 1:
        if _norm(found[0]) != _norm(expected):
            raise FormatError(
                Errors.E005.format(
                    found=found[0], start=fragments[0][0], end=fragments[0][1], expected=expected
                ),
                path=path,
                record=record,
            )
        return
    rest = _norm(expected)
    for frag, (s, e) in zip(found, fragments):
        pos = rest.find(_norm(frag))
        if pos < 0:
            raise FormatError(
                Errors.E005.format(found=frag, start=s, end=e, expected=expected),
                path=path,
                record=record,
            )
        rest = rest[pos + len(_norm(frag)) :]


def _trim(text: str, start: int, end: int) -> Fragment:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_tokens_at(doc: Doc, boundaries: Iterable[int]) -> int:
    """Split tokens so that every character offset in ``boundaries`` is a
    token boundary. Returns the number of tokens split."""
    cuts_by_token: Dict[int, List[int]] = {}
    starts = [t.idx for t in doc]
    import bisect

    for b in set(boundaries):
        i = bisect.bisect_right(starts, b) - 1
        if i < 0:
            continue
        token = doc[i]
        if token.idx < b < token.idx + len(token.text):
            cuts_by_token.setdefault(i, []).append(b - token.idx)
    if not cuts_by_token:
        return 0
    with doc.retokenize() as retokenizer:
        for i, cuts in cuts_by_token.items():
            token = doc[i]
            cuts = sorted(cuts)
            bounds = [0] + cuts + [len(token.text)]
            orths = [token.text[a:b] for a, b in zip(bounds, bounds[1:])]
            retokenizer.split(token, orths, heads=[(token, 0)] * len(orths))
    return len(cuts_by_token)


def build_doc(
    nlp: Language,
    text: str,
    mentions: Sequence[MentionSpec],
    *,
    report: Report,
    path: Optional[Union[str, Path]] = None,
    record_prefix: str = "",
    discontiguous: str = "merge",
    spans_key: str = MENTIONS_KEY,
    strict: bool = False,
) -> Tuple[Doc, List[MentionSpec]]:
    """Tokenise ``text`` and place ``mentions`` in ``doc.spans[spans_key]``.

    Policy for discontiguous mentions (``discontiguous``):
    - ``merge``: one span covering first to last fragment; the exact fragments
      stay in ``span._.fragments`` so writers reproduce them (counted as
      ``mentions_merged_discontiguous``).
    - ``skip``: left out of the doc and listed in the report.
    Tokens that straddle a mention boundary are split (``split_tokens``).
    Bad mentions raise when ``strict``, else are listed in the report.
    Returns the doc and the mentions that were placed.
    """
    register_extensions()
    check_length(nlp, text, path=path, record=record_prefix.strip() or None)
    doc = nlp.make_doc(text)
    placed: List[Tuple[MentionSpec, Fragment]] = []
    seen_ids = set()
    for spec in mentions:
        record = f"{record_prefix}{spec.id}" + (f" ({spec.record})" if spec.record else "")
        try:
            if spec.id in seen_ids:
                raise FormatError(Errors.E011.format(id=spec.id), path=path, record=record)
            check_fragments(text, spec.fragments, spec.text, path=path, record=record)
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "mention")
            continue
        seen_ids.add(spec.id)
        if len(spec.fragments) > 1 and discontiguous == "skip":
            report.skip(
                FormatError("discontiguous mention skipped by policy", path=path, record=record),
                "discontiguous",
            )
            continue
        start = min(s for s, _ in spec.fragments)
        end = max(e for _, e in spec.fragments)
        bounds = _trim(text, start, end)
        if bounds[0] >= bounds[1]:
            err = FormatError(Errors.E016.format(start=start, end=end), path=path, record=record)
            if strict:
                raise err
            report.skip(err, "mention")
            continue
        if len(spec.fragments) > 1:
            report.counts["mentions_merged_discontiguous"] += 1
        else:
            report.counts["mentions_contiguous"] += 1
        placed.append((spec, bounds))
    n_split = split_tokens_at(doc, [b for _, bounds in placed for b in bounds])
    report.counts["split_tokens"] += n_split
    spans: List[Span] = []
    for spec, (start, end) in placed:
        span = doc.char_span(start, end, label=spec.label, span_id=spec.id)
        if span is None or not len(span):  # split_tokens_at should make this impossible
            raise FormatError(
                f"cannot place the mention at {start}:{end} on token boundaries",
                path=path,
                record=f"{record_prefix}{spec.id}",
            )
        spans.append(span)
        set_mention_attrs(doc, spec.id, fragments=[list(f) for f in spec.fragments], **spec.attrs)
    doc.spans[spans_key] = spans
    return doc, [spec for spec, _ in placed]
