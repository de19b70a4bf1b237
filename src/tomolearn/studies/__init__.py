"""Studies that take a task and a list of methods: the generalisation study (quality,
conformal bounds and shift detection in and out of distribution) and its tables and chart."""

from .generalisation import generalisation_report, registered_factory, shift_names  # noqa: F401
from .tables import format_markdown, generalisation_figure, plot_generalisation  # noqa: F401

__all__ = ["generalisation_report", "registered_factory", "shift_names", "format_markdown",
           "generalisation_figure", "plot_generalisation"]
