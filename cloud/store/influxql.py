"""Quoting for InfluxQL (pure). Resident and site ids come from configuration and requests,
so every identifier is double-quoted and every string literal single-quoted and escaped;
statements are never built from unquoted input."""

from __future__ import annotations

__all__ = ["quote_identifier", "quote_string"]


def quote_identifier(name: str) -> str:
    """A double-quoted identifier: ``my "db"`` -> ``"my \\"db\\""``."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """A single-quoted string literal: ``o'brien`` -> ``'o\\'brien'``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
