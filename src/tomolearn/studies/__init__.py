"""Studies that take a task and a list of registered methods: reconstruction quality beside
published reference numbers (:mod:`.quality`), the generalisation study with conformal
bounds and shift detection (:mod:`.generalisation`, tables and chart in :mod:`.tables`), the
speed of the learned networks (:mod:`.speed`), the tuning of the classical methods
(:mod:`.tuning`) and the demo (:mod:`.demo`)."""

from .generalisation import generalisation_report, registered_factory, shift_names  # noqa: F401
from .quality import (REFERENCE_RESULTS, benchmark, format_quality_table,  # noqa: F401
                      references, tv_time_to_converge)
from .speed import SPEED_ARCHITECTURES, format_speed_table, learned_speed  # noqa: F401
from .tables import format_markdown, generalisation_figure, plot_generalisation  # noqa: F401

__all__ = ["generalisation_report", "registered_factory", "shift_names", "format_markdown",
           "generalisation_figure", "plot_generalisation", "REFERENCE_RESULTS", "references",
           "benchmark", "format_quality_table", "tv_time_to_converge", "SPEED_ARCHITECTURES",
           "learned_speed", "format_speed_table"]
