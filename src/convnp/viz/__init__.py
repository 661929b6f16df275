"""Plots of a network and its training: curves, filters, feature maps, confusion matrix, mistakes, an HTML report.

Compute once, then draw (scikit-learn's Display idea): each ``plot_*`` takes arrays (or a History) that were
computed before, draws into ``ax`` when given, and returns the matplotlib Figure. matplotlib is an optional
dependency (``pip install 'convnp[plot]'``) imported only inside these functions, so ``import convnp.viz`` and the
pure helpers (``read_metrics``, ``conv_activations``, ``most_confident_mistakes``) work without it.
"""

from convnp.viz.confusion import plot_confusion
from convnp.viz.curves import plot_curves, read_metrics
from convnp.viz.feature_maps import conv_activations, plot_feature_maps
from convnp.viz.filters import filter_grid, plot_filters
from convnp.viz.mistakes import most_confident_mistakes, plot_mistakes
from convnp.viz.report import ReportCallback, write_report

__all__ = [
    "plot_curves",
    "read_metrics",
    "plot_filters",
    "filter_grid",
    "plot_feature_maps",
    "conv_activations",
    "plot_confusion",
    "plot_mistakes",
    "most_confident_mistakes",
    "write_report",
    "ReportCallback",
]
