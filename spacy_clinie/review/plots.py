"""Plotly figures for the review page.

Plotly renders a small HTML subset inside text (``<b>``, ``<a href>``,
``<br>``...), so every token or label that reaches a figure goes through
:func:`esc` first: Plotly turns the entities back into characters and shows
them as text. Axes use numeric positions with tick labels, because category
axes would merge repeated tokens ("the", ",").
"""
import html
from typing import List, Optional, Sequence

import plotly.graph_objects as go

from .attention import AttentionView

MATCH = "#2e7d32"
MATCH_O = "#dcefdc"
MISMATCH = "#c62828"
FONT = dict(family="system-ui, -apple-system, Segoe UI, sans-serif", size=12)


def esc(text: str) -> str:
    """Text that Plotly shows literally (no markup, no links)."""
    return html.escape(str(text), quote=False)


def _short(text: str, width: int = 12) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title=dict(text=esc(title), x=0.01, font=dict(size=14)),
        height=height,
        margin=dict(l=70, r=20, t=40, b=90),
        font=FONT,
        plot_bgcolor="white",
        hoverlabel=dict(font=FONT),
    )
    return fig


def _token_axis(labels: Sequence[str]) -> dict:
    """Token tick labels, shortened (hover shows the whole token)."""
    return dict(tickmode="array", tickvals=list(range(len(labels))), ticktext=[esc(_short(t, 16)) for t in labels], tickangle=-45)


def alignment_figure(
    words: Sequence[str],
    gold: Sequence[str],
    predicted: Sequence[str],
    probs: Optional[Sequence[float]] = None,
    title: str = "Predicted vs gold",
) -> go.Figure:
    """Two rows of tag cells under the tokens, gold on top and the
    prediction below: green where they agree (pale for O/O), red where they
    differ; hover for the token, both tags and the tag probability."""
    n = len(words)
    match = [g == p for g, p in zip(gold, predicted)]
    code = [(0 if g == "O" else 1) if m else 2 for g, m in zip(gold, match)]
    hover = [
        "token: %s<br>gold: %s<br>predicted: %s%s<br>%s"
        % (esc(w), esc(g), esc(p), f" (p={probs[i]:.2f})" if probs else "", "match" if m else "MISMATCH")
        for i, (w, g, p, m) in enumerate(zip(words, gold, predicted, match))
    ]
    fig = go.Figure(
        go.Heatmap(
            z=[code, code],
            x=list(range(n)),
            y=["predicted", "gold"],
            zmin=0,
            zmax=2,
            colorscale=[[0, MATCH_O], [0.33, MATCH_O], [0.33, MATCH], [0.66, MATCH], [0.66, MISMATCH], [1, MISMATCH]],
            showscale=False,
            text=[[esc(_short(t)) for t in predicted], [esc(_short(t)) for t in gold]],
            texttemplate="%{text}",
            textfont=dict(size=10),
            customdata=[hover, hover],
            hovertemplate="%{customdata}<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    fig.update_xaxes(**_token_axis(words), showgrid=False)
    fig.update_yaxes(showgrid=False)
    n_bad = n - sum(match)
    return _layout(fig, f"{title}: {sum(match)} of {n} tokens agree, {n_bad} differ", 210)


def saliency_figure(view: AttentionView) -> go.Figure:
    z = view.saliency
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(len(view.units))),
            y=[f"layer {i + 1}" for i in range(z.shape[0])],
            colorscale="Blues",
            colorbar=dict(title="share"),
            customdata=[[esc(u) for u in view.units]] * z.shape[0],
            hovertemplate="%{y}<br>%{customdata}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(**_token_axis(view.units))
    return _layout(fig, "Saliency: attention each token receives, per layer", 300)


def flow_figure(view: AttentionView) -> go.Figure:
    units = [esc(u) for u in view.units]
    n = len(units)
    fig = go.Figure(
        go.Heatmap(
            z=view.rollout,
            x=list(range(n)),
            y=list(range(n)),
            colorscale="Blues",
            colorbar=dict(title="flow"),
            customdata=[[[units[r], units[c]] for c in range(n)] for r in range(n)],
            hovertemplate="%{customdata[0]} draws on %{customdata[1]}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_xaxes(**_token_axis(view.units))
    fig.update_yaxes(tickmode="array", tickvals=list(range(n)), ticktext=[esc(_short(u, 16)) for u in view.units], autorange="reversed")
    return _layout(fig, "Attention flow (rollout over all layers): row draws on column", max(320, 16 * n + 130))


def _content(view: AttentionView) -> List[int]:
    return [i for i, k in enumerate(view.kinds) if k in ("prompt", "word")]


def bar_figure(view: AttentionView, focus: Optional[int] = None, predicted: Optional[Sequence[str]] = None) -> go.Figure:
    keep = _content(view)
    imp = view.importance(focus)
    colors = []
    for i in keep:
        if view.kinds[i] == "prompt":
            colors.append("#9e9e9e")
        elif predicted is not None and predicted[view.word_index[i]] != "O":
            colors.append("#ef6c00")
        else:
            colors.append("#1565c0")
    labels = [view.units[i] for i in keep]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(keep))),
            y=[float(imp[i]) for i in keep],
            marker_color=colors,
            customdata=[esc(u) for u in labels],
            hovertemplate="%{customdata}: %{y:.1f}%<extra></extra>",
        )
    )
    fig.update_xaxes(**_token_axis(labels))
    fig.update_yaxes(title="% of attention", rangemode="tozero")
    who = "all words" if focus is None else f"token {focus}"
    return _layout(fig, f"Importance from {who} (grey prompt, orange mention)", 300)


def area_figure(view: AttentionView, focus: Optional[int] = None) -> go.Figure:
    keep = _content(view)
    per_layer = view.layer_importance(focus)
    L = per_layer.shape[0]
    labels = [view.units[i] for i in keep]
    fig = go.Figure()
    for layer in range(L):
        fig.add_trace(
            go.Scatter(
                x=list(range(len(keep))),
                y=[float(per_layer[layer, i]) / L for i in keep],
                mode="lines",
                stackgroup="layers",
                name=f"layer {layer + 1}",
                customdata=[esc(u) for u in labels],
                hovertemplate=f"layer {layer + 1}" + " %{customdata}: %{y:.2f}%<extra></extra>",
            )
        )
    fig.update_xaxes(**_token_axis(labels))
    fig.update_yaxes(title="% of attention (stacked layers)", rangemode="tozero")
    return _layout(fig, "Attention share per position, stacked by layer", 320)


def attention_figures(view: AttentionView, focus: Optional[int] = None, predicted: Optional[Sequence[str]] = None) -> dict:
    return {
        "saliency": saliency_figure(view),
        "flow": flow_figure(view),
        "bar": bar_figure(view, focus, predicted),
        "area": area_figure(view, focus),
    }
