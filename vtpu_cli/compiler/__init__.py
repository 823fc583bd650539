"""phextcc: the ``.phx`` compiler (see docs/phx.md)."""

from vtpu_cli.compiler.driver import bind_inputs, cc_command, compile_ir, compile_phx, read_output

__all__ = ["compile_phx", "compile_ir", "cc_command", "bind_inputs", "read_output"]
