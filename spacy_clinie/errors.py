"""Coded errors and warnings, in the style of spacy/errors.py.

The convention: every error a user can cause carries a code from here, so
that it can be looked up and searched for. Readers raise ``FormatError``
(a ``ValueError``) naming the file and the record, so that a user can find
the bad input without a debugger; components raise ``ValueError`` (or
``TypeError``) with an E1xx message that starts with the component's name.
"""
from typing import Optional, Union
from pathlib import Path


class ErrorsWithCodes(type):
    def __getattribute__(self, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):
            return msg
        return f"[{code}] {msg}"


class Warnings(metaclass=ErrorsWithCodes):
    W001 = "{path}: skipped {n} bad record(s); see the conversion report for reasons."
    W002 = (
        "{path}: {n} of {total} mentions in {docs} docs overlap a longer mention and are left out "
        "of doc.ents (a stock ner cannot learn overlapping entities); the counts are in the reader's report."
    )


class Errors(metaclass=ErrorsWithCodes):
    E001 = "File is empty."
    E002 = "File is not valid UTF-8 (byte {pos}: {reason})."
    E003 = "Malformed XML: {reason}"
    E004 = "Offsets {start}:{end} are outside the text (length {length})."
    E005 = "Span text {found!r} at {start}:{end} does not match the annotated text {expected!r}."
    E006 = "Missing required field {field!r}."
    E007 = "Bad value for {field!r}: {value!r} ({reason})."
    E008 = "Malformed JSON: {reason}"
    E009 = "Unparseable line: {line!r}"
    E010 = "Relation {rel!r} points at unknown mention {arg!r}."
    E011 = "Duplicate id {id!r}."
    E012 = "Unknown format {fmt!r}; choose one of: {choices}."
    E013 = "Predicted and gold corpora do not align: {reason}"
    E014 = "No documents found in {path}."
    E015 = "Expected a header with columns {columns}, found {found}."
    E016 = "Mention at {start}:{end} covers only whitespace."
    E017 = "Text of {n} characters is over the tokenizer's limit of {limit} (nlp.max_length)."

    # E1xx: components and their functions (bad settings, calls out of
    # order, inconsistent data); ``[{name}]`` is the component's name
    E101 = "cannot fit a calibration map on no predictions"
    E102 = "{name}: unknown calibration levels {unknown} (expected {levels})"
    E103 = "[{name}] rule must be one of {rules}, got {rule!r}"
    E104 = "[{name}] max_distance must be 0 (no limit) or positive, got {max_distance}"
    E105 = "[{name}] linker_min_score must lie in [0, 1], got {linker_min_score}"
    E106 = "[{name}] linker {linker!r} is set but neither linker_positive nor linker_negative names its labels"
    E107 = "[{name}] max_tokens must be at least 1, got {max_tokens}"
    E108 = "[{name}] voting must be one of {methods}, got {voting!r}"
    E109 = "[{name}] extra member {key!r} has no predict(docs) method"
    E110 = "[{name}] duplicate member name {member!r}"
    E111 = "[{name}] member {member!r} has no meta['performance'][{key!r}] for weights_from"
    E112 = "[{name}] member pipeline not found: {path}"
    E113 = "[{name}] no ensemble members: list pipeline paths in `members` or give extra_members"
    E114 = "[{name}] min_votes must be in [1, {n}], got {min_votes}"
    E115 = "[{name}] weights for unknown members {unknown}; members: {member_names}"
    E116 = "[{name}] the ensemble has no members: call nlp.initialize() or load a saved ensemble"
    E117 = "[{name}] member {member!r} returned {n_preds} predictions for {n_docs} docs"
    E118 = "top_k must be >= 1, got {top_k}"
    E119 = "[{name}] the MedDRA index is empty: call nlp.initialize(...) with a kb_loader first"
    E120 = "[{name}] {n_per_span} predictions for {n_spans} mentions in doc {doc_id}"
    E121 = "no clinie_meddra_linker in the pipeline (components: {components})"
    E122 = "threshold must lie in [0, 1], got {threshold}"
    E123 = "head_lr_scale must be positive, got {head_lr_scale}"
    E124 = "relation labels must be strings, got {label!r}"
    E125 = "{n_scores} score rows for {n_pairs} candidate pairs: were the docs changed after predict?"
    E126 = "{n_scored} scored pairs but {n_targets} targets"
    E127 = "[{name}] cannot add a label after the model was initialized"
    E128 = "[{name}] threshold must be in [0, 1], got {threshold}"
    E129 = "[{name}] no classifier: set `classifier` to the path of a pipeline that sets doc.cats"
    E130 = "[{name}] classifier pipeline not found: {path}"
    E131 = "[{name}] positive_label {positive_label!r} is not a classifier label {labels}"
    E132 = "[{name}] no classifier loaded: call nlp.initialize() or load a saved pipeline"
    E133 = "aux_task must be one of {aux_tasks}, got {aux_task!r}"
    E134 = "[{name}] inference must be one of {choices}, got {value!r}"
    E135 = "[{name}] no labels: the examples have no spans under doc.spans[{key!r}] and none were given."
    E136 = "[{name}] aux_task={aux_task!r} but the data gives no aux labels; use aux_task = \"none\"."
    E137 = "[{name}] label_weights must be >= 0, got {weights}"
    E138 = "voting must be one of {methods}, got {method!r}"
    E139 = "voting = 'weighted_soft' needs a weight per member"
    E140 = "{n_weights} weights for {n} members"
    E141 = "weights must be >= 0 with a positive sum, got {weights}"
    E142 = "no ensemble members: nothing to vote on"
    E143 = "min_votes must be in [1, {n}], got {need}"
    E145 = "no labels to vote on"
    E147 = "[{name}] needs sentence boundaries: add a sentencizer (or parser) before it (doc {doc!r})"
    E148 = (
        "[{name}] no MedDRA terms: pass initialize(kb_loader=...) (e.g. clinie.MeddraAsciiLoader.v1 or "
        "clinie.MeddraTermsTable.v1) or examples whose mentions carry span._.meddra"
    )
    E149 = (
        "[{name}] the saved MedDRA index was embedded with {saved!r} but the encoder is {encoder!r}: "
        "re-initialize, or set the encoder model back"
    )
    E150 = "[{name}] no relation labels: pass labels to initialize or give it examples with doc._.relations"
    E151 = "need exactly one clinie_soft_prompt_tagger{named}; pipeline has {names}"
    E152 = "[{name}] {n_scored} scored candidates but {n_targets} targets"
    E153 = "[{name}] the training examples hold no {label!r} reactions to build the dictionary from"
    E154 = "[{name}] no candidates in the first training examples"


class FormatError(ValueError):
    """Bad input, with the file and record it was found in."""

    def __init__(
        self,
        message: str,
        *,
        path: Optional[Union[str, Path]] = None,
        record: Optional[str] = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.record = record
        self.message = message
        where = []
        if self.path:
            where.append(self.path)
        if record:
            where.append(f"record {record}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def to_dict(self) -> dict:
        return {"path": self.path, "record": self.record, "reason": self.message}
