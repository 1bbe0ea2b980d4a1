"""Errors a user can act on: each names the file, row and field at fault."""

from __future__ import annotations


class ProfileDistError(Exception):
    """Base class for errors reported to the user without a traceback."""


class BadInputError(ProfileDistError):
    def __init__(self, source_file: str, source_row: int | None, field: str | None, reason: str):
        self.source_file = source_file
        self.source_row = source_row
        self.field = field
        self.reason = reason
        where = source_file
        if source_row is not None:
            where += f", row {source_row}"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # so the error crosses process boundaries (Ray tasks) intact
        return (type(self), (self.source_file, self.source_row, self.field, self.reason))


class ConfigError(ProfileDistError):
    """A job config or command line that cannot run."""
