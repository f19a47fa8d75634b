"""Plotly figures for the pages, built from ``flakewatch.dashboards`` results.

No ORM here: each builder takes dataclasses and returns a
``plotly.graph_objects.Figure``; the page embeds its JSON in a
``<script type="application/json">`` element and ``static/flakewatch/
charts.js`` draws it with plotly.js from our own static files.

Plotly reads a small HTML subset in every label and hover text (``<b>``,
``<a href>``...), so text that comes from a report (test, job and commit
names) goes through ``_text``, which escapes it: it then shows as typed.

Colours are the Okabe-Ito palette, told apart by colour-blind readers; the
heatmap also writes the outcome in each cell's hover text, and the legend
of the pages names the shapes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]

from flakewatch.dashboards import DayFailures, DayRate, Run, WeekTotal

# Okabe-Ito: passed bluish green, failed vermillion, retried orange.
COLOURS = {
    "passed": "#009E73",
    "failed": "#D55E00",
    "error": "#D55E00",
    "retried": "#E69F00",
    "skipped": "#BBBBBB",
    "line": "#0072B2",
    "marker": "#CC79A7",
}
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
# The heatmap's outcome codes, worst last; a cell shows the worst run there.
HEAT_CODES = {"skipped": 0, "passed": 1, "retried": 2, "failed": 3, "error": 3}
HEAT_NAMES = {0: "skipped", 1: "passed", 2: "failed, then passed", 3: "failed"}


def _text(value: str) -> str:
    """Escape report text for plotly's HTML-subset labels."""
    return html.escape(value, quote=True)


def _layout(fig: go.Figure, *, y_title: str, height: int = 260) -> go.Figure:
    fig.update_layout(
        template="none",  # the styling below; the default template is 8 kB
        height=height,
        margin={"l": 56, "r": 16, "t": 12, "b": 40},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font={"family": FONT, "size": 12, "color": "#1f2933"},
        showlegend=False,
        hoverlabel={"font": {"family": FONT}},
    )
    fig.update_yaxes(
        title_text=y_title, gridcolor="#e4e7eb", zeroline=False, automargin=True
    )
    fig.update_xaxes(gridcolor="#f0f2f4", automargin=True)
    return fig


def flake_rate_trend(days: Sequence[DayRate]) -> go.Figure:
    """Plot the share of builds with at least one flaky failure, per day."""
    rates = [100 * d.flaky_builds / d.builds if d.builds else 0.0 for d in days]
    fig = go.Figure(
        go.Scatter(
            x=[d.day.isoformat() for d in days],
            y=rates,
            mode="lines+markers",
            line={"color": COLOURS["line"], "width": 2},
            marker={"size": 5},
            customdata=[[d.flaky_builds, d.builds] for d in days],
            hovertemplate=(
                "%{x}<br>%{y:.1f}% of builds had a flaky failure"
                "<br>(%{customdata[0]} of %{customdata[1]})<extra></extra>"
            ),
        )
    )
    _layout(fig, y_title="builds with a flake (%)")
    fig.update_yaxes(rangemode="tozero", ticksuffix="%")
    return fig


def time_lost(weeks: Sequence[WeekTotal]) -> go.Figure:
    """Plot CI time spent re-running jobs for flaky failures, per week."""
    fig = go.Figure(
        go.Bar(
            x=[w.week.isoformat() for w in weeks],
            y=[w.ms / 60_000 for w in weeks],
            marker={"color": COLOURS["retried"]},
            hovertemplate="week of %{x}<br>%{y:.1f} min re-run<extra></extra>",
        )
    )
    _layout(fig, y_title="minutes re-run")
    fig.update_yaxes(rangemode="tozero", ticksuffix=" min")
    # One bar a week: label weeks, not the times between them.
    fig.update_xaxes(type="category", tickprefix="week of ")
    return fig


def failure_trend(days: Sequence[DayFailures]) -> go.Figure:
    """Plot a team's share of test runs that failed first time, per day."""
    rates = [100 * d.failures / d.runs if d.runs else 0.0 for d in days]
    fig = go.Figure(
        go.Scatter(
            x=[d.day.isoformat() for d in days],
            y=rates,
            mode="lines+markers",
            line={"color": COLOURS["failed"], "width": 2},
            marker={"size": 5, "symbol": "x"},
            customdata=[[d.failures, d.runs] for d in days],
            hovertemplate=(
                "%{x}<br>%{y:.2f}% of runs failed"
                "<br>(%{customdata[0]} of %{customdata[1]})<extra></extra>"
            ),
        )
    )
    _layout(fig, y_title="runs failed (%)")
    fig.update_yaxes(rangemode="tozero", ticksuffix="%")
    return fig


def history_heatmap(runs: Sequence[Run]) -> go.Figure:
    """Plot a test's runs by commit (columns, oldest left) and job (rows).

    A cell is the worst outcome of the test's runs on that commit in that
    job; its hover text says which, with the number of runs.
    """
    commits: list[str] = []
    jobs: list[str] = []
    cells: dict[tuple[str, str], list[str]] = {}
    for run in reversed(runs):  # oldest first
        if run.commit not in commits:
            commits.append(run.commit)
        if run.job not in jobs:
            jobs.append(run.job)
        cells.setdefault((run.job, run.commit), []).append(run.outcome)
    jobs.sort()
    z: list[list[int | None]] = []
    hover: list[list[str]] = []
    for job in jobs:
        z_row: list[int | None] = []
        hover_row: list[str] = []
        for commit in commits:
            outcomes = cells.get((job, commit))
            if outcomes is None:
                z_row.append(None)
                hover_row.append("")
                continue
            code = _heat_code(outcomes)
            z_row.append(code)
            hover_row.append(
                f"{_text(job)} @ {_text(commit[:12])}<br>{HEAT_NAMES[code]}"
                f" ({len(outcomes)} run{'s' if len(outcomes) != 1 else ''})"
            )
        z.append(z_row)
        hover.append(hover_row)
    scale = [
        [0.0, COLOURS["skipped"]],
        [0.25, COLOURS["skipped"]],
        [0.25, COLOURS["passed"]],
        [0.5, COLOURS["passed"]],
        [0.5, COLOURS["retried"]],
        [0.75, COLOURS["retried"]],
        [0.75, COLOURS["failed"]],
        [1.0, COLOURS["failed"]],
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(len(commits))),
            y=[_text(j) for j in jobs],
            text=hover,
            hovertemplate="%{text}<extra></extra>",
            colorscale=scale,
            zmin=-0.5,
            zmax=3.5,
            showscale=False,
            xgap=1,
            ygap=2,
        )
    )
    _layout(fig, y_title="", height=max(140, 46 * len(jobs) + 60))
    ticks = list(range(0, len(commits), max(1, len(commits) // 8)))
    fig.update_xaxes(
        title_text="commit (oldest left)",
        tickvals=ticks,
        ticktext=[_text(commits[i][:7]) for i in ticks],
        showgrid=False,
    )
    fig.update_yaxes(showgrid=False)
    return fig


def _heat_code(outcomes: list[str]) -> int:
    failed = any(o in ("failed", "error") for o in outcomes)
    passed = any(o == "passed" for o in outcomes)
    if failed and passed:
        return HEAT_CODES["retried"]
    return max(HEAT_CODES[o] for o in outcomes)


def duration_series(
    points: Sequence[tuple[str, float]], *, regressed_since: str = ""
) -> go.Figure:
    """Plot durations per run (seconds), marking where a slowdown began.

    ``points`` are (commit, milliseconds), oldest first; ``regressed_since``
    is the commit of the step, drawn as a dashed line with a label.
    """
    x = list(range(len(points)))
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=[ms / 1000 for _, ms in points],
            mode="lines+markers",
            line={"color": COLOURS["line"], "width": 2},
            marker={"size": 5},
            text=[_text(commit[:12]) for commit, _ in points],
            hovertemplate="commit %{text}<br>%{y:.3f} s<extra></extra>",
        )
    )
    _layout(fig, y_title="duration (s)")
    fig.update_yaxes(rangemode="tozero", ticksuffix=" s")
    fig.update_xaxes(title_text="run (oldest left)")
    step = next((i for i, (c, _) in enumerate(points) if c == regressed_since), None)
    if regressed_since and step is not None:
        fig.add_vline(
            x=step,
            line={"color": COLOURS["marker"], "dash": "dash", "width": 2},
            annotation_text=f"slower since {_text(regressed_since[:7])}",
            annotation_position="top left",
        )
    return fig


def figure_json(fig: go.Figure) -> dict[str, Any]:
    """Return the figure as plain JSON data for the page to embed."""
    data: dict[str, Any] = fig.to_plotly_json()
    data.pop("frames", None)
    return {
        "data": data["data"],
        "layout": data["layout"],
        "config": {"displaylogo": False, "responsive": True},
    }
