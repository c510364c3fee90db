"""Parsers for LLM answers: tolerant of chatter, code fences and truncation.

Two output formats:
- ``json`` (seed 001, figure 5): ``{entity name: entity type}`` per line, a
  single object with several keys, a JSON list of such objects, or
  ``{"entity": ..., "type": ...}`` records. Objects are distilled from messy
  text by regex (seed 004), so one bad line loses only itself.
- ``index`` (seed 002): ``<Index> : <Token> : <Label>`` per line, or ``None``.

A parser returns ``None`` when nothing usable was found (the caller keeps the
small model's prediction and counts it) and ``[]`` for an explicit "no
entities" answer.
"""
import json
import re
from typing import Any, List, Optional, Tuple

_FENCE = re.compile(r"```(?:json)?|```", re.I)
_OBJECT = re.compile(r"\{[^{}]*\}")
_PAIR = re.compile(r'"((?:[^"\\]|\\.)+)"\s*:\s*"((?:[^"\\]|\\.)*)"')
_INDEX_LINE = re.compile(r"^\s*\[?(\d+)\]?\s*:\s*(.*?)\s*:\s*([A-Za-z][\w\- ]*?)\s*$")
_NONE = re.compile(r"^\s*(none|no entities|\{\s*\}|\[\s*\])\s*\.?\s*$", re.I)
_RECORD_KEYS = (("entity", "type"), ("text", "label"), ("entity", "label"), ("name", "type"), ("mention", "label"))


def _unquote(raw: str) -> str:
    """The value of a JSON string body, tolerating control characters and
    bad escapes (small models emit both)."""
    try:
        return json.loads(f'"{raw}"', strict=False)
    except ValueError:
        return raw.replace('\\"', '"')


def _pairs_from(value: Any) -> List[Tuple[str, str]]:
    """Entity/label pairs from a decoded JSON value of any accepted shape."""
    out: List[Tuple[str, str]] = []
    if isinstance(value, list):
        for item in value:
            out.extend(_pairs_from(item))
    elif isinstance(value, dict):
        for ek, lk in _RECORD_KEYS:
            if isinstance(value.get(ek), str) and isinstance(value.get(lk), str):
                return [(value[ek], value[lk])]
        if isinstance(value.get("entities"), (list, dict)):
            return _pairs_from(value["entities"])
        for k, v in value.items():
            if isinstance(v, str):
                out.append((k, v))
            elif isinstance(v, list):  # TACO style {"Term": ["mention", ...]} is handled by its own task
                out.extend((k, x) for x in v if isinstance(x, str))
    return out


def parse_json_entities(text: str) -> Optional[List[Tuple[str, str]]]:
    """``[(entity text, label)]`` in answer order, ``[]`` for an explicit
    empty answer, ``None`` when the answer cannot be read."""
    text = _FENCE.sub("", str(text)).strip()
    if not text:
        return None
    if _NONE.match(text):
        return []
    try:
        return [(e.strip(), lab.strip()) for e, lab in _pairs_from(json.loads(text, strict=False)) if e.strip()]
    except (json.JSONDecodeError, ValueError):
        pass
    found: List[Tuple[str, str]] = []
    seen_any = False
    for match in _OBJECT.finditer(text):
        seen_any = True
        try:
            found.extend(_pairs_from(json.loads(match.group(0), strict=False)))
        except (json.JSONDecodeError, ValueError):
            found.extend((_unquote(k), _unquote(v)) for k, v in _PAIR.findall(match.group(0)))
    if not seen_any:  # truncated output: an unclosed object still has whole pairs
        found.extend((_unquote(k), _unquote(v)) for k, v in _PAIR.findall(text))
    found = [(e.strip(), lab.strip()) for e, lab in found if e.strip()]
    if found:
        return found
    return [] if seen_any and all(m.group(0).replace(" ", "") == "{}" for m in _OBJECT.finditer(text)) else None


def parse_index_lines(text: str) -> Optional[List[Tuple[int, str, str]]]:
    """``[(index, token, label)]`` from ``<Index> : <Token> : <Label>`` lines."""
    text = _FENCE.sub("", str(text)).strip()
    if not text:
        return None
    if _NONE.match(text):
        return []
    out = []
    for line in text.splitlines():
        m = _INDEX_LINE.match(line)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3).strip()))
    return out or None
