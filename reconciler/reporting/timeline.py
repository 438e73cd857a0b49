"""The geometry of a job's run timeline (x = time, one row per group and node), ready for SVG.

Pure: spans in, rows, bars and ticks out, every coordinate already a fixed-precision string so the
rendered file is byte-identical for the same state. `rendering` only places them in the template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from reconciler.reporting.text import duration, rfc3339

LABEL_WIDTH = 190.0
PLOT_WIDTH = 720.0
RIGHT_MARGIN = 20.0
TOP = 8.0
ROW_HEIGHT = 20.0
BAR_HEIGHT = 14.0
AXIS_HEIGHT = 30.0
MIN_BAR = 2.0
LABEL_CHARS = 28

STATUS_COLOURS = {
    "success": "#2da44e",
    "failure": "#cf222e",
    "timeout": "#bc4c00",
    "canceled": "#8c959f",
    "running": "#0969da",
    "pending": "#d0d7de",
}


@dataclass(frozen=True, slots=True)
class Span:
    """One run as the timeline sees it; `start`/`end` None when it never started."""

    node_id: str
    group: int
    status: str
    start: datetime | None
    end: datetime | None
    title: str


@dataclass(frozen=True, slots=True)
class Row:
    group: int
    node_id: str
    label: str  # shortened for the axis
    full: str  # the label in full (a tooltip when `label` is shortened)
    y: str  # baseline of the label


@dataclass(frozen=True, slots=True)
class Bar:
    x: str
    y: str
    width: str
    status: str  # the colour is the status's (`STATUS_COLOURS`)
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    x: str
    anchor: str  # SVG text-anchor: start | middle | end
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    width: str
    height: str
    rows: tuple[Row, ...]
    bars: tuple[Bar, ...]
    bar_height: str
    ticks: tuple[Tick, ...]
    axis_y: str  # the time axis line
    tick_y: str  # where tick marks end
    label_y: str  # baseline of the tick labels
    left: str  # the plot area, x
    right: str

    @property
    def empty(self) -> bool:
        return not self.bars


def _num(value: float) -> str:
    return f"{value:.1f}"


def _shorten(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def layout(spans: Sequence[Span]) -> Timeline:
    """Place `spans`: rows sorted by (group, node id), time scaled between the earliest start
    and the latest end (at least one second), bars at least `MIN_BAR` wide, in the order given
    (a later bar is drawn over an earlier one)."""
    keys = sorted({(s.group, s.node_id) for s in spans})
    rows = tuple(
        Row(
            group=g,
            node_id=node,
            label=_shorten(f"g{g} {node}"),
            full=f"g{g} {node}",
            y=_num(TOP + i * ROW_HEIGHT + ROW_HEIGHT / 2 + 4),
        )
        for i, (g, node) in enumerate(keys)
    )
    bar_y = {
        key: _num(TOP + i * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2)
        for i, key in enumerate(keys)
    }
    timed: list[tuple[Span, datetime, datetime]] = []
    for span in spans:
        start, end = span.start or span.end, span.end or span.start
        if start is not None and end is not None:
            timed.append((span, start, end if end > start else start))
    plot_bottom = TOP + len(keys) * ROW_HEIGHT
    height = _num(plot_bottom + AXIS_HEIGHT)
    width = _num(LABEL_WIDTH + PLOT_WIDTH + RIGHT_MARGIN)
    frame = (
        _num(plot_bottom),
        _num(plot_bottom + 4),
        _num(plot_bottom + 18),
        _num(LABEL_WIDTH),
        _num(LABEL_WIDTH + PLOT_WIDTH),
    )
    if not timed:
        return Timeline(width, height, rows, (), _num(BAR_HEIGHT), (), *frame)
    first = min(start for _, start, _ in timed)
    last = max(end for _, _, end in timed)
    seconds = max((last - first).total_seconds(), 1.0)
    scale = PLOT_WIDTH / seconds
    right = LABEL_WIDTH + PLOT_WIDTH - MIN_BAR
    bars = []
    for span, start, end in timed:
        left = LABEL_WIDTH + (start - first).total_seconds() * scale
        bar_width = (end - start).total_seconds() * scale
        bars.append(
            Bar(
                x=f"{min(left, right):.1f}",
                y=bar_y[span.group, span.node_id],
                width=f"{bar_width if bar_width > MIN_BAR else MIN_BAR:.1f}",
                status=span.status,
                title=span.title,
            )
        )
    ticks = (
        Tick(_num(LABEL_WIDTH), "start", rfc3339(first)),
        Tick(_num(LABEL_WIDTH + PLOT_WIDTH / 2), "middle", f"{duration(seconds)} across"),
        Tick(_num(LABEL_WIDTH + PLOT_WIDTH), "end", rfc3339(last)),
    )
    return Timeline(width, height, rows, tuple(bars), _num(BAR_HEIGHT), ticks, *frame)
