"""Reading programs from disk: assembly text or a ``.siw`` binary, with clean errors for bad files."""

from __future__ import annotations

from pathlib import Path

from vtpu_cli.core.errors import VtpuError


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VtpuError(f"no such file: {path}") from None
    except UnicodeDecodeError as e:
        raise VtpuError(
            f"{path}: not UTF-8 text (byte {e.start})",
            hint="is this a .siw binary? use `vtpu disasm` or `vtpu run`",
        ) from None
    except OSError as e:
        raise VtpuError(f"cannot read {path}: {e.strerror}") from None


def load_program(path: Path):
    """A .siw binary, or .vasm source assembled on the fly."""
    from vtpu_cli.binary import siwfile

    try:
        head = path.open("rb").read(8)
    except FileNotFoundError:
        raise VtpuError(f"no such file: {path}") from None
    except OSError as e:
        raise VtpuError(f"cannot read {path}: {e.strerror}") from None
    if head == siwfile.MAGIC or path.suffix == ".siw":
        return siwfile.read(str(path))
    from vtpu_cli.asm.assembler import assemble

    return assemble(read_source(path), str(path))
