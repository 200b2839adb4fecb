"""A small line chart drawn with PIL (axes, ticks, labels, legend), so plots need no matplotlib."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SERIES_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))


def nice_ticks(lo: float, hi: float, max_ticks: int = 7) -> list[float]:
    """Round tick positions (steps of 1, 2 or 5 times a power of ten) covering ``[lo, hi]``.

    Args:
        lo: lower end of the axis.
        hi: upper end of the axis.
        max_ticks: most ticks wanted.

    Returns:
        increasing tick values inside ``[lo, hi]`` (up to rounding).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(max_ticks - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 10) for i in range(count)]


def _tick_label(value: float) -> str:
    return f"{value:g}"


def draw_line_chart(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    path: str | os.PathLike,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    y_range: tuple[float, float] | None = (0.0, 1.0),
    size: tuple[int, int] = (640, 420),
) -> Path:
    """Draw one or more series against shared ``x`` values and save the chart as PNG.

    Undefined values (``None`` or not finite) are skipped; the line is broken there.

    Args:
        x: x values, increasing.
        series: legend label -> y values (same length as ``x``).
        path: output PNG file; its folder is created when missing.
        title: chart title.
        x_label: x axis label.
        y_label: y axis label.
        y_range: fixed y axis range; ``None`` fits the data.
        size: image ``(width, height)`` in pixels.

    Returns:
        the path written.

    Raises:
        ValueError: when a series does not have one value per x value, or ``x`` is empty.
    """
    if len(x) == 0:
        raise ValueError("x: the chart needs at least one x value.")
    for label, values in series.items():
        if len(values) != len(x):
            raise ValueError(f"series {label!r}: expected {len(x)} values (one per x), got {len(values)}.")
    width, height = size
    left, right, top, bottom = 70, 20, 40, 55
    font = ImageFont.load_default()
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    x_lo, x_hi = float(min(x)), float(max(x))
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    else:
        # end the axis on a round tick so the last point does not sit on the frame
        ticks = nice_ticks(x_lo, x_hi, 8)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else x_hi - x_lo
        x_hi = ticks[-1] + step if ticks[-1] < x_hi - 1e-9 else x_hi
    finite = [float(v) for vs in series.values() for v in vs if v is not None and math.isfinite(float(v))]
    if y_range is not None:
        y_lo, y_hi = y_range
    elif finite:
        y_lo, y_hi = min(finite), max(finite)
        pad = 0.05 * (y_hi - y_lo) if y_hi > y_lo else 0.5
        y_lo, y_hi = y_lo - pad, y_hi + pad
    else:
        y_lo, y_hi = 0.0, 1.0

    def to_px(xv: float, yv: float) -> tuple[float, float]:
        px = left + (xv - x_lo) / (x_hi - x_lo) * (width - left - right)
        py = height - bottom - (yv - y_lo) / (y_hi - y_lo) * (height - top - bottom)
        return px, py

    # axes, ticks and grid
    draw.line([(left, top), (left, height - bottom), (width - right, height - bottom)], fill="black", width=1)
    for tick in nice_ticks(y_lo, y_hi, 6):
        _, py = to_px(x_lo, tick)
        draw.line([(left + 1, py), (width - right, py)], fill=(225, 225, 225))
        draw.line([(left - 5, py), (left, py)], fill="black")
        label = _tick_label(tick)
        tw, th = _text_size(draw, label, font)
        draw.text((left - 8 - tw, py - th / 2), label, fill="black", font=font)
    for tick in nice_ticks(x_lo, x_hi, 8):
        px, _ = to_px(tick, y_lo)
        draw.line([(px, height - bottom), (px, height - bottom + 5)], fill="black")
        label = _tick_label(tick)
        tw, _ = _text_size(draw, label, font)
        draw.text((px - tw / 2, height - bottom + 8), label, fill="black", font=font)

    # labels and title
    tw, th = _text_size(draw, x_label, font)
    draw.text(((left + width - right - tw) / 2, height - bottom + 28), x_label, fill="black", font=font)
    if y_label:
        box = draw.textbbox((0, 0), y_label, font=font)
        text = Image.new("RGB", (int(box[2] - box[0]) + 6, int(box[3] - box[1]) + 6), "white")
        ImageDraw.Draw(text).text((3 - box[0], 3 - box[1]), y_label, fill="black", font=font)
        text = text.rotate(90, expand=True)
        image.paste(text, (8, int((top + height - bottom - text.height) / 2)))
    tw, _ = _text_size(draw, title, font)
    draw.text(((width - tw) / 2, 12), title, fill="black", font=font)

    # series and legend
    for index, (label, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        previous = None
        for xv, yv in zip(x, values):
            if yv is None or not math.isfinite(float(yv)):
                previous = None
                continue
            point = to_px(float(xv), float(yv))
            if previous is not None:
                draw.line([previous, point], fill=colour, width=2)
            draw.ellipse([point[0] - 3, point[1] - 3, point[0] + 3, point[1] + 3], fill=colour)
            previous = point
        ly = top + 6 + 16 * index
        lx = width - right - 120
        draw.line([(lx, ly + 6), (lx + 20, ly + 6)], fill=colour, width=2)
        draw.text((lx + 26, ly), str(label), fill="black", font=font)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    return out


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont) -> tuple[int, int]:
    if not text:
        return 0, 0
    box = draw.textbbox((0, 0), text, font=font)
    return int(box[2] - box[0]), int(box[3] - box[1])
