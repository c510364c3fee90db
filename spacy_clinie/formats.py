"""Names of the file formats: the corpora ``clinie convert`` reads, and the
EHR inputs and outputs of ``clinie pipe``.

Plain tuples with no imports, so that the CLI can list them in ``--help``
without loading spaCy; the converter and ``batch/`` import them from here.
"""

FORMATS = ("tac-onsides", "tac-xml", "brat", "euadr")
INPUT_FORMATS = ("jsonl", "csv", "parquet", "txt")
OUTPUT_FORMATS = ("jsonl", "brat", "tac-xml", "table", "fhir")

__all__ = ["FORMATS", "INPUT_FORMATS", "OUTPUT_FORMATS"]
