"""The run report: what happened to the domain, drawn from the journal (Markdown + self-contained HTML).

`build_report` (pure) turns inventory + plan + events into a `Report`; `render_markdown` and `render_html`
format it. `orchestrator.commands.report.run` reads the journal and writes both files.
"""
from orchestrator.report.html import render_html, render_svg
from orchestrator.report.markdown import render_markdown
from orchestrator.report.model import Report, build_report

__all__ = ["Report", "build_report", "render_html", "render_markdown", "render_svg"]
