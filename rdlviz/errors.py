"""Errors that say what is wrong, where, and how to fix it.

Every error raised for bad input names the table and column involved (when there is one)
and a fix. They subclass ``ValueError`` so generic callers that already catch
``ValueError`` keep working.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["RdlvizError", "SchemaError", "TaskError", "ConfigError", "OfflineError"]


class RdlvizError(Exception):
    """Base class of every error rdlviz raises on purpose."""


class SchemaError(RdlvizError, ValueError):
    """A database does not satisfy the relational contract (keys, times, types).

    Args:
        message: what is wrong.
        table: the table it concerns.
        column: the column it concerns.
        fix: what the caller can do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        table: Optional[str] = None,
        column: Optional[str] = None,
        fix: Optional[str] = None,
    ) -> None:
        self.table, self.column, self.fix = table, column, fix
        where = ""
        if table is not None and column is not None:
            where = f"table '{table}', column '{column}': "
        elif table is not None:
            where = f"table '{table}': "
        text = where + message
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)


class TaskError(SchemaError):
    """A task declaration (SQL, columns, window) is inconsistent with its database."""

    def __init__(self, message: str, *, task: Optional[str] = None, **kwargs) -> None:
        self.task = task
        if task is not None:
            message = f"task '{task}': {message}"
        super().__init__(message, **kwargs)


class ConfigError(RdlvizError, ValueError):
    """An argument or configuration value is out of range or inconsistent."""


class OfflineError(RdlvizError, RuntimeError):
    """Something would need the network, which rdlviz never uses implicitly."""
