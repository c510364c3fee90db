"""A tokenizer for clinical text and drug labels.

spaCy's English tokenizer keeps ``(DRESS)/Multiorgan``, ``nausea/`` or
``attention.e`` as single tokens, so annotated mentions would not start or
end on a token boundary. This adds infixes for slashes, brackets, asterisks,
colons and sentence-final dots glued to the next word, which are everywhere
in labels and notes. Readers split any token that still straddles a mention
boundary and report it.
"""
from typing import Callable, List, Optional

from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.util import (
    compile_infix_regex, compile_prefix_regex,
    compile_suffix_regex,
    registry,
)

CLINICAL_INFIXES: List[str] = [
    r"/",
    r"(?<=\w)[()\[\]](?=\w)",
    r"(?<=[\w)\]])[()\[\]]",
    r"[()\[\]](?=[\w(\[])",
    r"\*",
    r"(?<=[A-Za-z)])[:;](?=[A-Za-z(])",
    r"(?<=[a-z]{3})\.(?=[A-Za-z(]{2})",
    r"(?<=[a-z]{3})\.(?=\()",
]

CLINICAL_PREFIXES: List[str] = [r"/", r"-(?=[A-Z][a-z])", r"\*"]

# Footnote letters glued to a word in label tables: "fatigue.c", "rest.f".
CLINICAL_SUFFIXES: List[str] = [r"(?<=[a-z]{3})\.[a-h]"]  # spaCy appends the "$"


@registry.tokenizers("clinie.Tokenizer.v1")
def create_clinical_tokenizer(
    extra_infixes: Optional[List[str]] = None,
    extra_prefixes: Optional[List[str]] = None,
    extra_suffixes: Optional[List[str]] = None,
) -> Callable[[Language], Tokenizer]:
    """spaCy's default tokenizer plus clinical infixes, prefixes and suffixes
    (``None``: this module's ``CLINICAL_*`` lists; ``[]``: none)."""
    extra_infixes = CLINICAL_INFIXES if extra_infixes is None else extra_infixes
    extra_prefixes = CLINICAL_PREFIXES if extra_prefixes is None else extra_prefixes
    extra_suffixes = CLINICAL_SUFFIXES if extra_suffixes is None else extra_suffixes

    def create_tokenizer(nlp: Language) -> Tokenizer:
        tokenizer = registry.tokenizers.get("spacy.Tokenizer.v1")()(nlp)
        infixes = list(nlp.Defaults.infixes or []) + list(extra_infixes)
        tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
        prefixes = list(extra_prefixes) + list(nlp.Defaults.prefixes or [])
        tokenizer.prefix_search = compile_prefix_regex(prefixes).search
        suffixes = list(extra_suffixes) + list(nlp.Defaults.suffixes or [])
        tokenizer.suffix_search = compile_suffix_regex(suffixes).search
        return tokenizer

    return create_tokenizer


def make_blank(lang: str = "en") -> Language:
    """A blank pipeline with the clinical tokenizer, used by all readers."""
    import spacy

    return spacy.blank(lang, config={"nlp": {"tokenizer": {"@tokenizers": "clinie.Tokenizer.v1"}}})
