"""Reports: one pipeline from tidy tables to Markdown, HTML and figures (docs/design.md section 4).

    from validate.report import write_report, render, read_tables
    run_dir = write_report(result, "reports/runs", "my-run", meta)   # FileExistsError if it exists
    render(run_dir)                                                   # redraw from tables/ alone

The run report (``dmft validate``) and the paper report (``validate.paper``) are both built from
these pieces. Modules:

    run        the run folder: write_report, render, read_tables, environment
    document   Document: headings, paragraphs, tables, figures -> Markdown and HTML
    tables     save_tables / load_tables: the CSV and Parquet tables of a report folder
    figures    the run report's figures (every one drawn, each tagged with its check)
    coordinate the coordinate-check figure of a width study (validate.width_study), from its tables
    style      matplotlib helpers: outside legends, width axes, heatmaps, decluttered ticks
    folders    atomic folder writes with umask permissions, no silent replace, stale-temp cleanup
"""

from .coordinate import coordinate_figure
from .document import Document, Figure, fmt, html_table, md_table
from .figures import Plot, draw_all, kernel_row, scheme_colours
from .folders import STALE_AFTER_S, FolderExistsError, atomic_dir, check_target, clean_stale, temp_name
from .run import environment, figure_index, read_tables, render, write_report
from .style import figure, file_key, heatmap, legend_outside, panels, save, suptitle, width_axis
from .tables import load_tables, save_tables

__all__ = [
    "STALE_AFTER_S", "Document", "Figure", "FolderExistsError", "Plot", "atomic_dir", "check_target", "clean_stale",
    "coordinate_figure", "draw_all",
    "environment", "figure", "figure_index", "file_key", "fmt", "heatmap", "html_table", "kernel_row",
    "legend_outside", "load_tables", "md_table", "panels", "read_tables", "render", "save", "save_tables",
    "scheme_colours", "suptitle", "temp_name", "width_axis", "write_report",
]
