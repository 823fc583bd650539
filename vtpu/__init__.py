"""vtpu: a toolchain and runtime for a virtual 3-pipe tensor processor (the Python API).

>>> import vtpu
>>> prog = vtpu.assemble(".output r1\\n    DMOV r1, 42\\n    DHALT\\n")   # doctest: +SKIP
>>> prog.run(engine="interp").outputs["r1"]                          # doctest: +SKIP
array([42])

See docs/python.md. Everything here is re-exported from ``vtpu_cli.api`` (the implementation).
"""

from vtpu_cli import __version__
from vtpu_cli.api import (
    Diagnostic,
    DiagnosticError,
    Model,
    ModelLoadError,
    Program,
    Result,
    RunFault,
    VtpuError,
    assemble,
    compile,
    detect_language,
    load,
)

__all__ = [
    "Diagnostic",
    "DiagnosticError",
    "Model",
    "ModelLoadError",
    "Program",
    "Result",
    "RunFault",
    "VtpuError",
    "__version__",
    "assemble",
    "compile",
    "detect_language",
    "load",
]
