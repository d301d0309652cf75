"""Server-rendered SVG bar charts of the overview's activity: geometry only, in plain numbers;
the template (``_overview_activity.html``) draws them with a title, a description and a table
alternative for screen readers."""

from __future__ import annotations

from dataclasses import dataclass

from hookhub.web.stats import Series

WIDTH = 600
HEIGHT = 160
TOP = 10
BOTTOM = 20  # room for the axis labels
LEFT = 40


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_h: float
    failed_y: float
    failed_h: float
    other_y: float
    other_h: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: int
    baseline: float
    left: int


def bar_chart(series: Series, labels: list[str]) -> Chart:
    """Stacked bars per time bucket: successes at the bottom, failures above, the rest on top."""
    peak = max((p.total for p in series.points), default=0)
    scale = (HEIGHT - TOP - BOTTOM) / peak if peak else 0.0
    baseline = HEIGHT - BOTTOM
    count = max(1, len(series.points))
    slot = (WIDTH - LEFT) / count
    bars = []
    for i, point in enumerate(series.points):
        other = max(0, point.total - point.ok - point.failed)
        ok_h = point.ok * scale
        failed_h = point.failed * scale
        other_h = other * scale
        bars.append(
            Bar(
                x=round(LEFT + i * slot + slot * 0.1, 2),
                width=round(slot * 0.8, 2),
                ok_y=round(baseline - ok_h, 2),
                ok_h=round(ok_h, 2),
                failed_y=round(baseline - ok_h - failed_h, 2),
                failed_h=round(failed_h, 2),
                other_y=round(baseline - ok_h - failed_h - other_h, 2),
                other_h=round(other_h, 2),
                label=labels[i] if i < len(labels) else "",
            )
        )
    return Chart(width=WIDTH, height=HEIGHT, bars=bars, peak=peak, baseline=baseline, left=LEFT)
