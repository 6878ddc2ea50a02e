"""The dashboard's chart of statements per day, drawn on the server as SVG geometry for the template: no
script runs in the page (the CSP allows none inline) and nothing is fetched. Our own because it is a few
rectangles and ticks; a charting library would bring a script or a renderer for that."""

from __future__ import annotations

import dataclasses
import datetime
import math

from babel.dates import format_date
from babel.numbers import format_decimal

from collection.dashboard import DayCount

# The drawing's own units (the SVG scales to its box; see manage.css).
WIDTH = 720
HEIGHT = 260
LEFT = 56  # room for the count labels
RIGHT = 8
TOP = 12
BOTTOM = 40  # room for the day labels
TICKS = 4


@dataclasses.dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # "<day>: <count>", the bar's tooltip


@dataclasses.dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "end"  # SVG text-anchor


@dataclasses.dataclass(frozen=True)
class DailyChart:
    width: int
    height: int
    left: int
    bottom_line: float
    right_edge: int
    bars: list[Bar]
    count_ticks: list[Tick]  # y positions
    day_ticks: list[Tick]  # x positions


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `value` (axis maximum)."""
    if value <= TICKS:
        return TICKS
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = int(step * power)
        if candidate >= value and candidate % TICKS == 0:
            return candidate
    return int(10 * power)


def daily_chart(days: list[DayCount], language: str) -> DailyChart | None:
    """Bars of one day each, a count axis with TICKS steps, and up to three day labels."""
    if not days:
        return None
    top = _nice_ceiling(max(day.count for day in days))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / len(days)
    gap = slot * 0.15 if slot > 3 else 0.0
    bars = []
    for index, day in enumerate(days):
        height = plot_height * day.count / top
        bars.append(
            Bar(
                x=round(LEFT + index * slot + gap / 2, 2),
                y=round(TOP + plot_height - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                label=f"{day_label(day.day, language)}: {format_decimal(day.count, locale=language)}",
            )
        )
    count_ticks = [
        Tick(
            position=round(TOP + plot_height - plot_height * step / TICKS, 2),
            label=format_decimal(top * step // TICKS, locale=language),
        )
        for step in range(TICKS + 1)
    ]
    # The first, middle and last day: more would not fit on a phone.
    last = len(days) - 1
    day_ticks = [
        Tick(
            position=round(LEFT + (index + 0.5) * slot, 2),
            label=day_label(days[index].day, language),
            anchor="start" if index == 0 else "end" if index == last else "middle",
        )
        for index in sorted({0, last // 2, last})
    ]
    return DailyChart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        bottom_line=TOP + plot_height,
        right_edge=WIDTH - RIGHT,
        bars=bars,
        count_ticks=count_ticks,
        day_ticks=day_ticks,
    )


def day_label(day: datetime.date, language: str) -> str:
    return format_date(day, format="medium", locale=language)
