"""The finish every report plot shares: grid, legend outside the axes, tight layout, PNG, figure closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_plot(fig: Any, ax: Any, path: Path) -> Path:
    """Grid, a legend right of the axes (it never hides a point), save at 110 dpi, close; returns ``path``."""
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
