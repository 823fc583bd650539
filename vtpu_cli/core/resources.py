"""Locating data shipped with the package (the Lark grammars)."""

from __future__ import annotations

from pathlib import Path


def grammar_text(name: str) -> str:
    """The text of ``grammar/<name>``: from the installed ``vtpu_cli.grammar`` package, or from the
    source tree when a checkout's ``vtpu_cli`` shadows the installed one (e.g. ``python -m pytest``)."""
    try:
        from importlib.resources import files

        return (files("vtpu_cli.grammar") / name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parents[2] / "grammar" / name).read_text(encoding="utf-8")
