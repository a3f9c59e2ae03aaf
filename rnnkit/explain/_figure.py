"""Figures of the explain views (`memory`, `gradient_flow`, `states`): matplotlib's object API
(no pyplot: no global state, no display needed), saved as PNG or SVG by the file's suffix,
and inlined as a PNG into the HTML a notebook shows (no external file or script)."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

DPI = 110


def new_figure(width: float, height: float):
    """A Figure of `width` x `height` inches, laid out so labels never overlap."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def integer_ticks(axis) -> None:
    """Ticks at whole numbers only on `axis` (steps and lags are counted)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def check_path(path, where: str) -> None:
    if path is not None and Path(path).suffix.lower() not in (".png", ".svg"):
        raise ValueError(
            f"{where}.plot writes PNG or SVG, chosen by the file's suffix; got {str(path)!r}. "
            f"Use e.g. plot('{where}.png') or plot('{where}.svg')."
        )


def save(figure, path) -> None:
    """Write `figure` to `path` (PNG or SVG, by its suffix, checked by `check_path`)."""
    # A tight box: a legend or long title placed outside the axes is kept, not clipped.
    figure.savefig(path, format=Path(path).suffix.lower()[1:], bbox_inches="tight", pad_inches=0.1)


def png_bytes(figure) -> bytes:
    """`figure` as PNG bytes, in a tight box (as `save` writes it)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()


def html(summary: str, figure) -> str:
    """A self-contained HTML fragment: `summary` as a paragraph, then the figure inline."""
    data = base64.b64encode(png_bytes(figure)).decode("ascii")
    text = "<br>".join(escape(line) for line in summary.splitlines())
    return (
        f'<div class="rnnkit-explain"><p style="font-family: sans-serif">{text}</p>'
        f'<img alt="{escape(summary.splitlines()[0])}" src="data:image/png;base64,{data}"/></div>'
    )


def json_float(value) -> float | None:
    """A float JSON can hold: NaN and infinities become None."""
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None
