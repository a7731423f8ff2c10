"""Plotly figure specs as plain dicts: the server builds them, ``app.js`` draws them.

Only the plotly.js bundle is used; the plotly Python package is never imported, so
pages cost no start-up time or memory for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

Figure = dict[str, Any]

#: Colours for series, in order; the first is the site's accent.
PALETTE = ("#3456d1", "#e07b39", "#1e8e4e", "#c0392b", "#8e44ad", "#16a2b8", "#b7791f", "#6b7385")


def _x(values: Sequence[Any]) -> list[Any]:
    return [v.isoformat() if isinstance(v, datetime) else v for v in values]


def time_series(
    x: Sequence[Any],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    y_title: str = "",
    kind: str = "line",
    stacked: bool = False,
    hlines: Sequence[tuple[float, str]] = (),
    bands: Sequence[tuple[Any, Any, str]] = (),
) -> Figure:
    """One trace per series over shared x values (times or categories).

    ``hlines`` are (y, label) threshold lines; ``bands`` are (x0, x1, label) shaded spans.
    """
    data = []
    for i, (name, ys) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        trace: dict[str, Any] = {"name": name, "x": _x(x), "y": list(ys)}
        if kind == "bar":
            trace.update(type="bar", marker={"color": colour})
        else:
            trace.update(type="scatter", mode="lines", line={"color": colour, "width": 1.8})
        data.append(trace)
    shapes: list[dict[str, Any]] = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": y,
            "y1": y,
            "line": {"color": "#c0392b", "dash": "dash", "width": 1},
        }
        for y, _ in hlines
    ]
    shapes += [
        {
            "type": "rect",
            "yref": "paper",
            "x0": _x([a])[0],
            "x1": _x([b])[0],
            "y0": 0,
            "y1": 1,
            "fillcolor": "rgba(192,57,43,0.08)",
            "line": {"width": 0},
        }
        for a, b, _ in bands
    ]
    annotations = [
        {
            "xref": "paper",
            "x": 1,
            "y": y,
            "text": label,
            "showarrow": False,
            "yanchor": "bottom",
            "xanchor": "right",
            "font": {"color": "#c0392b", "size": 10},
        }
        for y, label in hlines
        if label
    ]
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 13}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "shapes": shapes,
        "annotations": annotations,
        "showlegend": len(data) > 1,
    }
    if kind == "bar" and stacked:
        layout["barmode"] = "stack"
    return {"data": data, "layout": layout}


def bars(
    categories: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str = "",
    x_title: str = "",
    errors: tuple[Sequence[float], Sequence[float]] | None = None,
    horizontal: bool = True,
) -> Figure:
    """A bar per category, optionally with asymmetric error bars (minus, plus)."""
    trace: dict[str, Any] = {"type": "bar", "marker": {"color": PALETTE[0]}}
    if horizontal:
        trace.update(orientation="h", y=list(categories), x=list(values))
    else:
        trace.update(x=list(categories), y=list(values))
    if errors is not None:
        key = "error_x" if horizontal else "error_y"
        trace[key] = {
            "type": "data",
            "symmetric": False,
            "array": list(errors[1]),
            "arrayminus": list(errors[0]),
            "color": "#1d2330",
        }
    axis = "xaxis" if horizontal else "yaxis"
    layout = {
        "title": {"text": title, "font": {"size": 13}},
        axis: {"title": {"text": x_title}},
        "showlegend": False,
    }
    if horizontal:
        layout["yaxis"] = {"automargin": True, "autorange": "reversed"}
    return {"data": [trace], "layout": layout}


def heatmap(
    z: Sequence[Sequence[float]],
    x: Sequence[str],
    y: Sequence[str],
    *,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
) -> Figure:
    """A matrix (e.g. a confusion matrix) with each cell's value written in it."""
    return {
        "data": [
            {
                "type": "heatmap",
                "z": [list(r) for r in z],
                "x": list(x),
                "y": list(y),
                # plotly.js's "Blues" runs dark to light; reversed, big counts are dark.
                "colorscale": "Blues",
                "reversescale": True,
                "showscale": False,
                "texttemplate": "%{z}",
                "hovertemplate": f"{y_title} %{{y}}, {x_title} %{{x}}: %{{z}}<extra></extra>",
            }
        ],
        "layout": {
            "title": {"text": title, "font": {"size": 13}},
            "xaxis": {"title": {"text": x_title}, "type": "category"},
            "yaxis": {
                "title": {"text": y_title},
                "type": "category",
                "autorange": "reversed",
                "automargin": True,
            },
        },
    }


def reliability(
    predicted: Sequence[float],
    observed: Sequence[float],
    counts: Sequence[int],
    *,
    title: str = "Reliability",
) -> Figure:
    """Observed frequency against predicted score per bin, beside the diagonal."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "perfect",
                "x": [0, 1],
                "y": [0, 1],
                "line": {"color": "#9aa3b5", "dash": "dot"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "judge",
                "x": list(predicted),
                "y": list(observed),
                "text": [f"n={c}" for c in counts],
                "marker": {"size": [6 + min(14, c**0.5) for c in counts], "color": PALETTE[0]},
            },
        ],
        "layout": {
            "title": {"text": title, "font": {"size": 13}},
            "xaxis": {"title": {"text": "judge score"}, "range": [0, 1]},
            "yaxis": {"title": {"text": "human says yes"}, "range": [0, 1]},
        },
    }
