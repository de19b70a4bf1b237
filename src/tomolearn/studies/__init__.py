"""Studies that take a task and a list of registered methods: reconstruction quality beside
published reference numbers (:mod:`.quality`), the generalisation study with conformal
bounds and shift detection (:mod:`.generalisation`, tables and chart in :mod:`.tables`), the
speed of the learned networks (:mod:`.speed`), the tuning of the classical methods
(:mod:`.tuning`) and the demo (:mod:`.demo`: one task per report; :mod:`.demo_all`: several
tasks in one report, a section each)."""

from .demo import default_methods, run_demo  # noqa: F401
from .demo_all import run_demo_all  # noqa: F401
from .generalisation import generalisation_report, registered_factory, shift_names  # noqa: F401
from .optimisers import benchmark_optimisers, format_optimisers_table  # noqa: F401
from .quality import (REFERENCE_RESULTS, benchmark, format_figures_table,  # noqa: F401
                      format_quality_table, references, tv_time_to_converge)
from .speed import SPEED_ARCHITECTURES, format_speed_table, learned_speed  # noqa: F401
from .tables import format_markdown, generalisation_figure, plot_generalisation  # noqa: F401

__all__ = ["generalisation_report", "registered_factory", "shift_names", "format_markdown",
           "generalisation_figure", "plot_generalisation", "REFERENCE_RESULTS", "references",
           "benchmark", "format_quality_table", "format_figures_table", "tv_time_to_converge",
           "SPEED_ARCHITECTURES",
           "learned_speed", "format_speed_table", "run_demo", "run_demo_all", "default_methods",
           "benchmark_optimisers", "format_optimisers_table"]
