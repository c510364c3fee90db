"""Coded errors and warnings, in the style of spacy/errors.py.

Every reader error names the file and the record so that a user can find the
bad input without a debugger.
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
