"""A corrector answer as edits to the tagger's spans in one unit.

Replacing the unit's spans with the LLM's answer is all-or-nothing; split
into edits (add, drop, relabel, re-boundary), each can be accepted or
rejected on its own (``gate.EditGate``), so one bad deletion in an
otherwise useful answer does not cost a correct mention.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

SpanKey = Tuple[int, int, str]
EDIT_KINDS = ("add", "drop", "relabel", "reboundary")


@dataclass
class Edit:
    """``old`` -> ``new`` (token start, end, label); ``old`` is None for an
    add, ``new`` None for a drop. ``features`` are filled by the gate."""

    kind: str
    old: Optional[SpanKey]
    new: Optional[SpanKey]
    features: Dict[str, float] = field(default_factory=dict)


def _overlap(a: SpanKey, b: SpanKey) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def split_edits(old: Sequence[SpanKey], new: Sequence[SpanKey]) -> List[Edit]:
    """Edits that turn ``old`` into ``new``. Spans in both are no edit. A new
    span with the same offsets as an unmatched old one relabels it; one that
    overlaps an unmatched old one re-bounds it (largest overlap first, each
    old span used once). What is left is added or dropped."""
    old_left = [s for s in dict.fromkeys(old) if s not in set(new)]
    new_left = [s for s in dict.fromkeys(new) if s not in set(old)]
    edits: List[Edit] = []
    for n in list(new_left):
        same = next((o for o in old_left if o[:2] == n[:2]), None)
        if same is not None:
            edits.append(Edit("relabel", same, n))
            old_left.remove(same)
            new_left.remove(n)
    pairs = sorted(((_overlap(o, n), o, n) for o in old_left for n in new_left if _overlap(o, n)), key=lambda p: -p[0])
    for _, o, n in pairs:
        if o in old_left and n in new_left:
            edits.append(Edit("reboundary", o, n))
            old_left.remove(o)
            new_left.remove(n)
    edits += [Edit("add", None, n) for n in new_left]
    edits += [Edit("drop", o, None) for o in old_left]
    return sorted(edits, key=lambda e: ((e.old or e.new)[0], EDIT_KINDS.index(e.kind)))  # type: ignore[index]


def apply_edits(old: Sequence[SpanKey], edits: Sequence[Edit]) -> List[SpanKey]:
    """``old`` with ``edits`` applied (an edit's ``old`` span is removed, its
    ``new`` span added), sorted by offsets."""
    out = list(dict.fromkeys(old))
    for e in edits:
        if e.old is not None and e.old in out:
            out.remove(e.old)
        if e.new is not None and e.new not in out:
            out.append(e.new)
    return sorted(out)
