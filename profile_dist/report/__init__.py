"""Reports: render reduce results for people (report.md) and programs (results.json)."""

from profile_dist.report.build import ReportSummary, build_report

__all__ = ["ReportSummary", "build_report"]
