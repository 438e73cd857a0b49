"""Status reports written back into the repository (DESIGN.md §6).

`data` builds frozen report values from the state, `rendering` turns them into Markdown, HTML and
JUnit files with the templates shipped here, `writing` puts them in the out dir and commits them.
"""

from reconciler.reporting.data import (
    DEFAULT_LAST,
    MAX_INSTANCES,
    BulkReportSource,
    Report,
    ReportSource,
    build_report,
)
from reconciler.reporting.rendering import GENERATED, Links, render

__all__ = [
    "DEFAULT_LAST",
    "GENERATED",
    "MAX_INSTANCES",
    "BulkReportSource",
    "Links",
    "Report",
    "ReportSource",
    "build_report",
    "render",
]
