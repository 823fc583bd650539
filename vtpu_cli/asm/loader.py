"""Reading programs from disk: assembly text or a ``.siw`` binary, with clean errors for bad files."""

from __future__ import annotations

import re
from pathlib import Path

from vtpu_cli.core.errors import VtpuError, printable

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def read_source(path: Path) -> str:
    """Source text (UTF-8, a leading byte-order mark dropped); ``-`` reads standard input."""
    import sys

    if str(path) == "-":
        data = sys.stdin.buffer.read()
        try:
            return data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as e:
            raise VtpuError(f"<stdin>: not UTF-8 text (byte {e.start})") from None
    try:
        return path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except FileNotFoundError:
        raise VtpuError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise VtpuError(f"{path} is a directory, not a source file") from None
    except UnicodeDecodeError as e:
        raise VtpuError(
            f"{path}: not UTF-8 text (byte {e.start})",
            hint="is this a .siw binary? use `vtpu disasm` or `vtpu run`",
        ) from None
    except OSError as e:
        raise VtpuError(f"cannot read {path}: {e.strerror}") from None


def load_binary(path: Path):
    """A ``.siw`` file with its names made printable (labels, coordinate names, groups, source file)."""
    from vtpu_cli.binary import siwfile

    if str(path) == "-":
        import sys

        program = siwfile.decode(sys.stdin.buffer.read(), "<stdin>")
    else:
        program = siwfile.read(str(path))
    return sanitize_names(program)


def sanitize_names(program):
    if _CONTROL.search(program.source_file or ""):
        program.source_file = printable(program.source_file)
    if any(_CONTROL.search(k) for k in program.labels):
        program.labels = {printable(k): v for k, v in program.labels.items()}
    if any(_CONTROL.search(k) for k in program.coord_names):
        program.coord_names = {printable(k): v for k, v in program.coord_names.items()}
    if any(_CONTROL.search(name) for name, _ in program.groups):
        program.groups = [(printable(name), m) for name, m in program.groups]
    return program


def load_program(path: Path):
    """A .siw binary, or .vasm source assembled on the fly."""
    from vtpu_cli.binary import siwfile

    try:
        with path.open("rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise VtpuError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise VtpuError(f"{path} is a directory, not a program") from None
    except OSError as e:
        raise VtpuError(f"cannot read {path}: {e.strerror}") from None
    if head == siwfile.MAGIC or path.suffix == ".siw":
        return load_binary(path)
    from vtpu_cli.asm.assembler import assemble

    return assemble(read_source(path), str(path))
