"""Figures of the report at print size: one style, one way to save, legends off the data.

A section draws inside ``with print_style():`` on a figure from :func:`new` (constrained
layout, at most :data:`PAGE_WIDTH` inches wide, so the PDF prints it at its natural size and
9-point text stays 9-point) and returns ``save(fig, figdir, name, caption)``, the
:class:`~derive.report.document.Figure` block.  :func:`legend_below` and
:func:`figure_legend` put the legend outside the axes, where it covers no curve.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from derive.report.document import Figure

#: inches of text width of the LaTeX document (A4, 2 cm margins: 17 cm)
PAGE_WIDTH = 6.5
#: pixels per inch of the PNGs (crisp on a screen, and in print)
DPI = 200
STYLE = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 10, "lines.linewidth": 1.4,
    "legend.frameon": False, "savefig.dpi": DPI,
}


@contextmanager
def print_style():
    """Matplotlib (Agg) with the report's sizes, for everything drawn and saved inside."""
    import matplotlib

    matplotlib.use("Agg")
    with matplotlib.rc_context(STYLE):
        yield


def new(ncols: int = 1, width: float = PAGE_WIDTH, height: float = 2.6):
    """A figure with `ncols` axes side by side, constrained layout (room for outside legends)."""
    import matplotlib.pyplot as plt

    if width > PAGE_WIDTH:
        raise ValueError(f"a report figure is at most {PAGE_WIDTH} inches wide, not {width}")
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), layout="constrained", squeeze=False)
    return fig, tuple(axes[0])


def legend_below(ax, ncols: int = 2) -> None:
    """The axes' legend centred below them, outside the data."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=ncols)


def figure_legend(fig, loc: str = "outside right upper", ncols: int = 1) -> None:
    """One legend for the figure, outside every axes (replacing axes legends); `loc` as
    matplotlib's ``"outside ..."`` locations of constrained layout."""
    handles = {}
    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc=loc, ncols=ncols)


def save(fig, figdir: Path, name: str, caption) -> Figure:
    """Write `fig` to `figdir`/`name`.png, close it, and return its Figure block."""
    import matplotlib.pyplot as plt

    path = Path(figdir) / f"{name}.png"
    width = float(fig.get_figwidth())
    fig.savefig(path)
    plt.close(fig)
    return Figure(path, caption, min(width, PAGE_WIDTH))
