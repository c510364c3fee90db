"""Names of the corpus formats ``clinie convert`` reads.

Plain tuples with no imports, so that the CLI can list them in ``--help``
without loading spaCy; the converter imports them from here.
"""

FORMATS = ("tac-onsides", "tac-xml", "brat", "euadr")

__all__ = ["FORMATS"]
