"""Lark grammars shipped inside the wheel (installed as the ``vtpu_cli.grammar`` package)."""
