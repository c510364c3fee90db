"""Official TAC 2017 ADR XML: read and write.

A ``<Label>`` holds ``<Text><Section id name>``, ``<Mentions>`` (offsets into
a section, comma-separated ``start``/``len`` for discontiguous mentions),
``<Relations>`` and label-level ``<Reactions>`` with MedDRA
``<Normalization>``. Each section becomes one Doc. Mention and relation ids,
all XML attributes and the label-level reactions are kept so that
read -> write -> read is lossless.
"""
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Union
from xml.etree.ElementTree import Element, ElementTree, SubElement, indent

from defusedxml import ElementTree as SafeET
from spacy.language import Language
from spacy.tokens import Doc

from ..errors import Errors, FormatError
from ..extensions import MENTIONS_KEY, get_mentions, register_extensions
from ._util import MentionSpec, Report, build_doc, check_length, read_text

MENTION_CORE = ("id", "section", "type", "start", "len", "str")
NORM_KEYS = ("meddra_pt", "meddra_pt_id", "meddra_llt", "meddra_llt_id")


def _parse_offsets(start: str, length: str, *, path: Path, record: str) -> List[List[int]]:
    try:
        starts = [int(x) for x in start.split(",")]
        lens = [int(x) for x in length.split(",")]
    except ValueError:
        raise FormatError(
            Errors.E007.format(field="start/len", value=f"{start}/{length}", reason="not integers"),
            path=path,
            record=record,
        )
    if len(starts) != len(lens):
        raise FormatError(
            Errors.E007.format(field="start/len", value=f"{start}/{length}", reason="different counts"),
            path=path,
            record=record,
        )
    return [[s, s + n] for s, n in zip(starts, lens)]


def _norm_str(text: str) -> str:
    return " ".join(text.lower().split())


def _mention_string(text: str, spec: MentionSpec) -> str:
    """The reaction string a mention names: its ``str`` attribute, else its
    fragments joined by spaces (offsets are checked later, so clip them)."""
    if spec.text is not None:
        return _norm_str(spec.text)
    return _norm_str(" ".join(text[max(s, 0) : max(e, 0)] for s, e in spec.fragments))


# Relation attributes beyond the TAC schema that a predicted relation may
# carry (written by docs_to_tac_xml, read back into the relation dict)
LINK_FIELDS = ("score", "method")


def _link_fields(extra: Dict[str, str]) -> Dict[str, Any]:
    """Pop ``score`` (a number) and ``method`` from a Relation's extra XML
    attributes; a score that is not a number stays an XML attribute."""
    out: Dict[str, Any] = {}
    if "score" in extra:
        try:
            out["score"] = float(extra["score"])
            del extra["score"]
        except ValueError:
            pass
    if "method" in extra:
        out["method"] = extra.pop("method")
    return out


def read_tac_xml(
    nlp: Language,
    path: Union[str, Path],
    *,
    report: Optional[Report] = None,
    discontiguous: str = "merge",
    strict: bool = False,
) -> Iterator[Doc]:
    """Yield one Doc per ``<Section>`` of one label file."""
    register_extensions()
    path = Path(path)
    report = report if report is not None else Report()
    text = read_text(path)
    try:
        root = SafeET.fromstring(text.encode("utf-8"))
    except SafeET.ParseError as err:
        raise FormatError(Errors.E003.format(reason=str(err)), path=path)
    if root.tag != "Label":
        raise FormatError(Errors.E003.format(reason=f"root element is <{root.tag}>, expected <Label>"), path=path)
    label_attrs = dict(root.attrib)
    label_id = label_attrs.get("drug") or path.stem
    text_el = root.find("Text")
    if text_el is None:
        raise FormatError(Errors.E006.format(field="<Text>"), path=path)
    sections = []
    for sec in text_el.findall("Section"):
        if "id" not in sec.attrib:
            raise FormatError(Errors.E006.format(field="Section id"), path=path)
        sections.append(sec)
    sec_ids = [s.attrib["id"] for s in sections]

    mentions: Dict[str, List[MentionSpec]] = {sid: [] for sid in sec_ids}
    section_of: Dict[str, str] = {}
    for m in root.iterfind("Mentions/Mention"):
        record = f"Mention {m.attrib.get('id', '?')}"
        try:
            for key in ("id", "section", "type", "start", "len"):
                if key not in m.attrib:
                    raise FormatError(Errors.E006.format(field=key), path=path, record=record)
            if m.attrib["section"] not in mentions:
                raise FormatError(
                    Errors.E007.format(field="section", value=m.attrib["section"], reason="no such section"),
                    path=path,
                    record=record,
                )
            fragments = _parse_offsets(m.attrib["start"], m.attrib["len"], path=path, record=record)
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "mention")
            continue
        extra = {k: v for k, v in m.attrib.items() if k not in MENTION_CORE}
        mentions[m.attrib["section"]].append(
            MentionSpec(
                id=m.attrib["id"],
                label=m.attrib["type"],
                fragments=[tuple(f) for f in fragments],
                text=m.attrib.get("str"),
                attrs={"text": m.attrib.get("str"), "xml_attrs": extra or None},
            )
        )
        section_of[m.attrib["id"]] = m.attrib["section"]

    relations: Dict[str, List[Dict[str, Any]]] = {sid: [] for sid in sec_ids}
    for r in root.iterfind("Relations/Relation"):
        record = f"Relation {r.attrib.get('id', '?')}"
        try:
            for key in ("id", "type", "arg1", "arg2"):
                if key not in r.attrib:
                    raise FormatError(Errors.E006.format(field=key), path=path, record=record)
            for arg in ("arg1", "arg2"):
                if r.attrib[arg] not in section_of:
                    raise FormatError(Errors.E010.format(rel=r.attrib["id"], arg=r.attrib[arg]), path=path, record=record)
            s1, s2 = section_of[r.attrib["arg1"]], section_of[r.attrib["arg2"]]
            if s1 != s2:
                raise FormatError(f"arguments lie in different sections ({s1}, {s2})", path=path, record=record)
        except FormatError as err:
            if strict:
                raise
            report.skip(err, "relation")
            continue
        extra = {k: v for k, v in r.attrib.items() if k not in ("id", "type", "arg1", "arg2")}
        rel = {"id": r.attrib["id"], "label": r.attrib["type"], "head": r.attrib["arg1"], "tail": r.attrib["arg2"]}
        rel.update(_link_fields(extra))
        if extra:
            rel["xml_attrs"] = extra
        relations[s1].append(rel)

    reactions = []
    for rx in root.iterfind("Reactions/Reaction"):
        norms = []
        for n in rx.findall("Normalization"):
            norms.append(dict(n.attrib))
        reactions.append({"id": rx.attrib.get("id"), "str": rx.attrib.get("str", ""), "normalizations": norms, "xml_attrs": {k: v for k, v in rx.attrib.items() if k not in ("id", "str")} or None})
    report.counts["reactions"] += len(reactions)
    report.counts["relations"] += sum(len(v) for v in relations.values())
    # A section's gold reactions are the label-level reactions named by its
    # AdverseReaction mentions. Compare with each mention's annotated string,
    # not its span: a discontiguous mention's span is the merged cover
    # ("muscle pain and cramps"), never the reaction ("muscle cramps").
    sec_texts = {sec.attrib["id"]: sec.text or "" for sec in sections}
    section_strings = {
        sid: {_mention_string(sec_texts[sid], spec) for spec in specs if spec.label == "AdverseReaction"}
        for sid, specs in mentions.items()
    }
    named = set().union(*section_strings.values()) if section_strings else set()
    for rx in reactions:
        if _norm_str(rx["str"]) not in named:
            report.skip(
                FormatError(
                    f"no AdverseReaction mention has the string {rx['str']!r}, so it belongs to no section",
                    path=path,
                    record=f"Reaction {rx['id'] or '?'}",
                ),
                "reaction",
            )

    for sec in sections:
        sid = sec.attrib["id"]
        sec_text = sec.text or ""
        try:
            check_length(nlp, sec_text, path=path, record=f"Section {sid}")
        except FormatError as err:
            if strict:
                raise
            n_m, n_r = len(mentions[sid]), len(relations[sid])
            why = f"{err.message} The section, its {n_m} mention(s) and {n_r} relation(s) are skipped."
            report.skip(FormatError(why, path=path, record=f"Section {sid}"), "section")
            continue
        doc, placed = build_doc(
            nlp,
            sec_text,
            mentions[sid],
            report=report,
            path=path,
            record_prefix="Mention ",
            discontiguous=discontiguous,
            strict=strict,
        )
        placed_ids = {spec.id for spec in placed}
        kept_rels = []
        for rel in relations[sid]:
            if rel["head"] in placed_ids and rel["tail"] in placed_ids:
                kept_rels.append(rel)
            else:
                report.skip(
                    FormatError("an argument mention was skipped", path=path, record=f"Relation {rel['id']}"),
                    "relation",
                )
        report.counts["sections"] += 1
        doc._.doc_id = f"{label_id}/{sid}"
        doc._.label_id = label_id
        doc._.section = sec.attrib.get("name")
        doc._.relations = kept_rels
        doc._.reactions = [r for r in reactions if _norm_str(r["str"]) in section_strings[sid]]
        doc._.source = {
            "format": "tac-xml",
            "file": str(path),
            "label_attrs": label_attrs,
            "section_attrs": dict(sec.attrib),
            "label_reactions": reactions,
        }
        yield doc


def _fmt_offsets(fragments: List[List[int]]) -> Dict[str, str]:
    return {
        "start": ",".join(str(s) for s, _ in fragments),
        "len": ",".join(str(e - s) for s, e in fragments),
    }


def docs_to_tac_xml(docs: List[Doc], *, label_id: Optional[str] = None, spans_key: str = MENTIONS_KEY) -> ElementTree:
    """Build one ``<Label>`` from the section Docs of one drug label.

    Predicted docs need no source: mention ids are kept when unique across
    the label and renumbered otherwise; reactions come from the source when
    read from XML, else from the unique AdverseReaction strings and their
    ``span._.meddra`` normalisations.
    """
    register_extensions()
    source0 = docs[0]._.source or {}
    label_attrs = dict(source0.get("label_attrs") or {"drug": label_id or docs[0]._.label_id or "document"})
    root = Element("Label", label_attrs)
    text_el = SubElement(root, "Text")
    mentions_el = SubElement(root, "Mentions")
    relations_el = SubElement(root, "Relations")
    reactions_el = SubElement(root, "Reactions")

    all_ids = [s.id_ for d in docs for s in get_mentions(d, spans_key)]
    keep_ids = all(all_ids) and len(set(all_ids)) == len(all_ids)
    rel_ids = [r.get("id") for d in docs for r in (d._.relations or [])]
    keep_rel_ids = all(rel_ids) and len(set(rel_ids)) == len(rel_ids)
    n_mention = n_rel = 0
    derived: Dict[str, List[Dict[str, Any]]] = {}
    for i, doc in enumerate(docs):
        src = doc._.source or {}
        sec_attrs = dict(src.get("section_attrs") or {"id": f"S{i + 1}", "name": doc._.section or ""})
        sid = sec_attrs["id"]
        sec_el = SubElement(text_el, "Section", sec_attrs)
        sec_el.text = doc.text
        id_map = {}
        for span in sorted(get_mentions(doc, spans_key), key=lambda s: (s.start_char, s.end_char, s.label_)):
            n_mention += 1
            mid = span.id_ if keep_ids else f"M{n_mention}"
            id_map[span.id_] = mid
            fragments = span._.fragments or [[span.start_char, span.end_char]]
            attrs = {"id": mid, "section": sid, "type": span.label_, **_fmt_offsets(fragments)}
            store = (doc._.mention_attrs or {}).get(span.id_, {})
            attrs["str"] = store.get("text") or " ".join(doc.text[s:e] for s, e in fragments)
            attrs.update(store.get("xml_attrs") or {})
            SubElement(mentions_el, "Mention", attrs)
            if span.label_ == "AdverseReaction":
                key = " ".join(attrs["str"].lower().split())
                derived.setdefault(key, [])
                for norm in span._.meddra or []:
                    if norm not in derived[key]:
                        derived[key].append(norm)
        for rel in doc._.relations or []:
            n_rel += 1
            if rel["head"] not in id_map or rel["tail"] not in id_map:
                continue
            attrs = {
                "id": rel["id"] if keep_rel_ids else f"RL{n_rel}",
                "type": rel["label"],
                "arg1": id_map[rel["head"]],
                "arg2": id_map[rel["tail"]],
            }
            # a predicted link's score and method (clinie_drug_ade_linker)
            attrs.update({key: str(rel[key]) for key in LINK_FIELDS if rel.get(key) is not None})
            attrs.update(rel.get("xml_attrs") or {})
            SubElement(relations_el, "Relation", attrs)

    reactions = source0.get("label_reactions")
    if reactions is None:
        reactions = [
            {"id": f"AR{j + 1}", "str": s, "normalizations": norms}
            for j, (s, norms) in enumerate(derived.items())
        ]
    for j, rx in enumerate(reactions):
        rx_el = SubElement(reactions_el, "Reaction", {"id": rx.get("id") or f"AR{j + 1}", "str": rx["str"], **(rx.get("xml_attrs") or {})})
        for k, norm in enumerate(rx.get("normalizations") or []):
            n_attrs = {key: str(val) for key, val in norm.items() if val is not None}
            n_attrs.setdefault("id", f"{rx_el.attrib['id']}.N{k + 1}")
            SubElement(rx_el, "Normalization", n_attrs)
    tree = ElementTree(root)
    indent(tree, space="  ")
    return tree


def write_tac_xml(docs: Iterable[Doc], output_dir: Union[str, Path], *, spans_key: str = MENTIONS_KEY) -> List[Path]:
    """Write one ``<label>.xml`` per drug label, grouping section Docs by
    ``doc._.label_id`` (a Doc without one becomes its own label)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    groups: Dict[str, List[Doc]] = {}
    for i, doc in enumerate(docs):
        key = doc._.label_id or doc._.doc_id or f"doc{i + 1}"
        groups.setdefault(key, []).append(doc)
    paths = []
    for label_id, group in groups.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label_id)
        path = output_dir / f"{safe}.xml"
        docs_to_tac_xml(group, label_id=label_id, spans_key=spans_key).write(path, encoding="utf-8", xml_declaration=True)
        paths.append(path)
    return paths
