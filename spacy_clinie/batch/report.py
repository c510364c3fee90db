"""``clinie report OUTPUT``: one self-contained HTML page about a ``clinie
pipe`` run, to look at before trusting a million notes.

It reads what the run left: the state file (counts, time, throughput, peak
memory), the quarantine file (reasons) and the output itself, as reactions
(JSONL records through ``reactions.py``, the table files, or the FHIR
resources), and shows counts per MedDRA SOC and the top PTs, the confidence
histogram, the share of negated and hypothetical reactions, a breakdown by
section (or by suspect drug when the run has no sections) and the
quarantine reasons. Plotly's JavaScript is inlined from the plotly package,
as the review app serves it: the page works offline and can be mailed.
``png_dir`` also writes each figure as a PNG (kaleido, through the local
Chromium).
"""

import html
import json
import re
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .checkpoint import RunState, load_state
from .fhir import read_resources, resource_reaction
from .reactions import OutputError
from .table import reaction_rows, read_table

TOP_PTS = 25
FONT = dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=12)
COLORS = {"main": "#1f5f8b", "negated": "#c62828", "hypothetical": "#ef8f00", "affirmed": "#2e7d32"}


@dataclass
class RunData:
    """What a report shows: the run's state, its reactions (table rows)
    and its quarantine entries."""

    output: Path
    fmt: str
    state: Optional[RunState]
    rows: List[Dict[str, Any]]
    quarantine: List[Dict[str, Any]]
    notes: List[str] = field(default_factory=list)


def state_path(output: Path) -> Path:
    """Where ``clinie pipe`` keeps the state of ``output`` (see
    ``run.output_paths``)."""
    if output.is_dir():
        return output / ".clinie-pipe-state.json"
    return output.with_name(output.name + ".state.json")


def default_quarantine(output: Path) -> Path:
    return output / "quarantine.jsonl" if output.is_dir() else output.with_name(output.name + ".quarantine.jsonl")


def _jsonl(path: Path) -> Iterator[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _rows_from_fhir(output: Path) -> List[Dict[str, Any]]:
    rows = []
    for resource in read_resources(output):
        r = resource_reaction(resource)
        rows.append(
            {
                "document_id": r["document_id"],
                "reaction": r["reaction"],
                "effect_meddra_id": r["effect_meddra_id"],
                "meddra_name": r["meddra_name"],
                "soc_meddra_id": r["soc_meddra_id"],
                "soc_meddra_name": r["soc_meddra_name"],
                "pred1": r["pred1"],
                "negated": r["negated"],
                "hypothetical": r["hypothetical"],
                "section": r["section"],
                "drug_name": r["drug_names"][0] if r["drug_names"] else None,
            }
        )
    return rows


def load_run(output: Path, quarantine: Optional[Path] = None) -> RunData:
    """Read a ``clinie pipe`` output (JSONL file, table or FHIR folder)."""
    output = Path(output)
    if not output.exists():
        raise ValueError(f"{output}: no such file or folder")
    state = load_state(state_path(output))
    notes: List[str] = []
    fmt = str(state.fingerprint.get("output_format")) if state else ""
    if not fmt:
        if output.is_file():
            fmt = "jsonl"
        elif (output / "reactions.csv").exists() or (output / "reactions.parquet").exists():
            fmt = "table"
        elif any(output.glob("*.ndjson")):
            fmt = "fhir"
        else:
            raise ValueError(
                f"{output}: not a `clinie pipe` output (no run state, no reactions.csv/.parquet, no .ndjson)"
            )
        notes.append(f"no run state beside {output}: counts, time and memory are not known")
    elif not state.complete:
        notes.append("the run has not finished: this report shows what it had committed so far")
    if fmt == "jsonl":
        rows: List[Dict[str, Any]] = []
        bad = 0
        drug_field = str((state.fingerprint.get("meta_fields") or {}).get("drug", "drug")) if state else "drug"
        for record in _jsonl(output):
            try:
                rows += reaction_rows(record, drug_field=drug_field)
            except OutputError:
                bad += 1
        if bad:
            notes.append(f"{bad} JSONL record(s) have content no reaction row can hold (see `--format table`)")
    elif fmt == "table":
        rows = read_table(output)
    elif fmt == "fhir":
        rows = _rows_from_fhir(output)
        if state and not state.fingerprint.get("fhir_include_negated"):
            notes.append("FHIR output leaves negated reactions out (--include-negated keeps them)")
    else:
        raise ValueError(f"{output}: a {fmt} run has no reactions to report; use --format jsonl, table or fhir")
    qpath = Path(quarantine) if quarantine else default_quarantine(output)
    entries = list(_jsonl(qpath)) if qpath.exists() else []
    return RunData(output=output, fmt=fmt, state=state, rows=rows, quarantine=entries, notes=notes)


# ---------------------------------------------------------------- numbers


def reason_kind(reason: str) -> str:
    """A quarantine reason without its particulars (ids, numbers, quoted
    values), so that reasons of the same kind count together."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", reason)
    text = re.sub(r"\(byte 0x[0-9a-f]+[^)]*\)|\([^)]*\bat\b[^)]*\)", "", text)
    text = re.sub(r"\d+", "N", text)
    return " ".join(text.split())[:160]


def run_stats(data: RunData) -> Dict[str, Any]:
    """Counts, time, throughput and memory as the state recorded them."""
    st = data.state
    rows = data.rows
    docs_with = len({r["document_id"] for r in rows})
    stats: Dict[str, Any] = {
        "format": data.fmt,
        "reactions": len(rows),
        "documents with a reaction": docs_with,
        "coded to a MedDRA PT": sum(1 for r in rows if r.get("effect_meddra_id") is not None),
    }
    if st is not None:
        extra = st.extra or {}
        stats.update(
            {
                "records read": st.offset,
                "written": st.written,
                "quarantined": st.quarantined,
                "of which a pipeline component failed": extra.get("component_errors", 0),
                "of which output could not be made": st.rejected - extra.get("component_errors", 0),
                "complete": st.complete,
                "restarts": st.restarts,
                "pipeline": extra.get("model_version") or st.fingerprint.get("model"),
                "seconds": round(st.seconds, 1),
            }
        )
        if st.seconds > 0:
            stats["docs/s"] = round(st.offset / st.seconds, 1)
            if extra.get("n_chars"):
                stats["chars/s"] = round(extra["n_chars"] / st.seconds)
        if extra.get("peak_rss_mb"):
            stats["peak memory (MB)"] = extra["peak_rss_mb"]
        if extra.get("peak_rss_children_mb"):
            stats["peak memory of a worker (MB)"] = extra["peak_rss_children_mb"]
    return stats


def _share(rows: List[Dict[str, Any]]) -> Dict[str, int]:
    negated = sum(1 for r in rows if r.get("negated"))
    hypothetical = sum(1 for r in rows if r.get("hypothetical") and not r.get("negated"))
    return {"affirmed": len(rows) - negated - hypothetical, "hypothetical": hypothetical, "negated": negated}


# ---------------------------------------------------------------- figures


def _layout(fig: Any, title: str, height: int = 380) -> Any:
    fig.update_layout(
        title=dict(text=html.escape(title, quote=False), x=0.01, font=dict(size=14)),
        height=height,
        margin=dict(l=10, r=20, t=44, b=40),
        font=FONT,
        plot_bgcolor="white",
        showlegend=False,
    )
    fig.update_xaxes(gridcolor="#eee", automargin=True)
    fig.update_yaxes(gridcolor="#eee", automargin=True)
    return fig


def _wrap(text: str, width: int = 48) -> str:
    """Escaped for Plotly (which reads a little HTML) and wrapped with <br>."""
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(text, width) or [""])


def _hbar(counts: List[Tuple[str, int]], title: str, color: str = COLORS["main"]) -> Any:
    import plotly.graph_objects as go

    labels = [_wrap(k) for k, _ in counts][::-1]
    values = [v for _, v in counts][::-1]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", marker_color=color, text=values, textposition="auto"))
    lines = sum(label.count("<br>") + 1 for label in labels)
    return _layout(fig, title, height=max(260, 70 + 16 * lines + 8 * len(counts)))


@dataclass
class Empty:
    """A figure with nothing to show, and why (a text panel, no PNG)."""

    title: str
    message: str


def _empty(title: str, message: str) -> Empty:
    return Empty(title, message)


def figures(data: RunData) -> Dict[str, Any]:
    """The report's Plotly figures by file-friendly name (:class:`Empty`
    where the run has nothing to show)."""
    import plotly.graph_objects as go

    rows = data.rows
    figs: Dict[str, Any] = {}
    socs = Counter(r.get("soc_meddra_name") for r in rows if r.get("soc_meddra_name"))
    figs["soc"] = (
        _hbar(socs.most_common(), "Reactions per MedDRA SOC")
        if socs
        else _empty("Reactions per MedDRA SOC", "No SOC in this run: the MedDRA terms the linker used have no hierarchy (mdhier.asc).")
    )
    pts = Counter(f"{r['meddra_name'] or r['effect_meddra_id']}" for r in rows if r.get("effect_meddra_id") is not None)
    figs["top_pts"] = (
        _hbar(pts.most_common(TOP_PTS), f"Top {min(TOP_PTS, len(pts))} MedDRA PTs (reactions)")
        if pts
        else _empty("Top MedDRA PTs", "No reaction is coded to MedDRA (no linker in the pipeline, or no match).")
    )
    conf = [r["pred1"] for r in rows if isinstance(r.get("pred1"), (int, float)) and r["pred1"] == r["pred1"]]
    if conf:
        fig = go.Figure(go.Histogram(x=conf, xbins=dict(start=0.0, end=1.0001, size=0.05), marker_color=COLORS["main"]))
        fig.update_xaxes(title_text="confidence (pred1)", range=[0, 1])
        fig.update_yaxes(title_text="reactions")
        figs["confidence"] = _layout(fig, f"Confidence of {len(conf)} reactions")
    else:
        figs["confidence"] = _empty("Confidence", "The pipeline gives no confidence (no calibrated confidence component).")
    share = _share(rows)
    total = max(1, len(rows))
    fig = go.Figure(
        go.Bar(
            x=list(share),
            y=[v / total for v in share.values()],
            marker_color=[COLORS[k] for k in share],
            text=[f"{v} ({100 * v / total:.1f}%)" for v in share.values()],
            textposition="auto",
        )
    )
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    figs["context"] = _layout(fig, "ConText: affirmed, hypothetical and negated reactions")
    sections = Counter(r.get("section") for r in rows if r.get("section"))
    if sections:
        figs["breakdown"] = _hbar(sections.most_common(20), "Reactions per section")
    else:
        drugs = Counter(r.get("drug_name") or "(no drug)" for r in rows)
        figs["breakdown"] = (
            _hbar(drugs.most_common(20), "Reactions per suspect drug")
            if rows
            else _empty("Breakdown", "No reactions in this run.")
        )
    reasons = Counter(reason_kind(str(q.get("reason", "?"))) for q in data.quarantine)
    figs["quarantine"] = (
        _hbar(reasons.most_common(15), f"Quarantine: {len(data.quarantine)} records by reason", COLORS["negated"])
        if reasons
        else _empty("Quarantine", "Nothing was quarantined.")
    )
    return figs


# ---------------------------------------------------------------- HTML

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clinie run report: {title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #f6f7f9; }}
header {{ background: #1f5f8b; color: white; padding: 14px 24px; }}
header h1 {{ margin: 0; font-size: 20px; }}
header .sub {{ opacity: .85; font-size: 13px; margin-top: 4px; }}
main {{ padding: 16px 24px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 14px; }}
.card {{ background: white; border-radius: 6px; padding: 10px 14px; min-width: 120px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }}
.card .v {{ font-size: 20px; font-weight: 600; }}
.card .k {{ font-size: 12px; color: #666; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 14px; }}
.panel {{ background: white; border-radius: 6px; padding: 6px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }}
table {{ border-collapse: collapse; font-size: 13px; width: 100%; }}
th, td {{ text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top; }}
.notes {{ background: #fff8e1; border-left: 4px solid #ef8f00; padding: 8px 12px; margin-bottom: 12px; font-size: 13px; }}
h2 {{ font-size: 16px; margin: 18px 0 8px; }}
.empty {{ padding: 10px 16px; }}
.empty h3 {{ font-size: 14px; font-weight: normal; margin: 4px 0 10px; }}
.empty p {{ color: #666; font-size: 13px; }}
</style>
<script>{plotly_js}</script>
</head>
<body>
<header><h1>clinie run report</h1><div class="sub">{subtitle}</div></header>
<main>
{notes}
<div class="cards" id="cards">{cards}</div>
<div class="grid" id="figures">{figures}</div>
<h2>Run</h2>
<div class="panel"><table id="stats">{stats}</table></div>
<h2>Quarantine examples</h2>
<div class="panel"><table id="quarantine">{quarantine}</table></div>
</main>
</body>
</html>
"""

CARD_KEYS = ("records read", "written", "quarantined", "reactions", "documents with a reaction", "docs/s", "peak memory (MB)")


def _cell(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render_html(data: RunData, figs: Optional[Dict[str, Any]] = None) -> str:
    """The report page; every value from the run is escaped."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    figs = figs if figs is not None else figures(data)
    stats = run_stats(data)
    cards = "".join(
        f'<div class="card"><div class="v">{_cell(stats[k])}</div><div class="k">{_cell(k)}</div></div>'
        for k in CARD_KEYS
        if k in stats
    )
    panels = "".join(
        (
            f'<div class="panel empty" id="fig-{name}"><h3>{_cell(fig.title)}</h3><p>{_cell(fig.message)}</p></div>'
            if isinstance(fig, Empty)
            else '<div class="panel">'
            + pio.to_html(
                fig, include_plotlyjs=False, full_html=False, div_id=f"fig-{name}", config={"displaylogo": False}
            )
            + "</div>"
        )
        for name, fig in figs.items()
    )
    stat_rows = "".join(f"<tr><th>{_cell(k)}</th><td>{_cell(v)}</td></tr>" for k, v in stats.items())
    q_rows = "<tr><th>index</th><th>id</th><th>where</th><th>reason</th></tr>" + "".join(
        f"<tr><td>{_cell(q.get('index'))}</td><td>{_cell(q.get('id'))}</td>"
        f"<td>{_cell(q.get('where'))}</td><td>{_cell(q.get('reason'))}</td></tr>"
        for q in data.quarantine[:50]
    )
    if not data.quarantine:
        q_rows = "<tr><td>Nothing was quarantined.</td></tr>"
    notes = "".join(f'<div class="notes">{_cell(n)}</div>' for n in data.notes)
    subtitle = f"{data.output} · {data.fmt}" + (f" · {stats['pipeline']}" if stats.get("pipeline") else "")
    # "</script>" inside the inlined library would end the tag early
    plotly_js = get_plotlyjs().replace("</script>", "<\\/script>")
    return PAGE.format(
        title=_cell(data.output.name),
        subtitle=_cell(subtitle),
        notes=notes,
        cards=cards,
        figures=panels,
        stats=stat_rows,
        quarantine=q_rows,
        plotly_js=plotly_js,
    )


def write_pngs(figs: Dict[str, Any], folder: Path, *, width: int = 900, scale: float = 1.0) -> List[Path]:
    """Each figure as ``folder/<name>.png``, rendered by kaleido in the local
    Chrome/Chromium (no network)."""
    try:
        import kaleido  # noqa: F401
    except ImportError as err:
        raise ValueError("--png needs kaleido: pip install 'spacy-clinie[report]'") from err
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        if isinstance(fig, Empty):
            continue
        path = folder / f"{name}.png"
        fig.write_image(str(path), width=width, height=fig.layout.height or 400, scale=scale)
        paths.append(path)
    return paths


def write_report(
    output: Path, html_path: Path, *, png_dir: Optional[Path] = None, quarantine: Optional[Path] = None
) -> Tuple[RunData, List[Path]]:
    """Write the HTML report of the run at ``output`` (and the PNGs)."""
    data = load_run(Path(output), quarantine)
    figs = figures(data)
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(data, figs), encoding="utf-8")
    pngs = write_pngs(figs, Path(png_dir)) if png_dir is not None else []
    return data, pngs
