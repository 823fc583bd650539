"""phextcc: the ``.phx`` compiler (see docs/phx.md).

The entry points are loaded on first use (PEP 562), so importing a light submodule such as
``compiler.cache`` does not import the whole compiler."""

__all__ = ["compile_phx", "compile_ir", "cc_command", "bind_inputs", "read_output"]


def __getattr__(name: str):
    if name in __all__:
        from vtpu_cli.compiler import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
