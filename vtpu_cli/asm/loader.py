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
    text = read_source(path)
    if ".include" in text:  # an included file may change without this one changing: no cache
        from vtpu_cli.asm.assembler import assemble

        return assemble(text, str(path))
    return assemble_cached(text, str(path))


ASM_CACHE_MAX = 256  # assembled programs kept (oldest dropped first)


def _assembler_digest() -> str:
    """A digest of everything that decides what the assembler produces: its source, the grammar, the op
    table and the .siw encoder. Any edit or upgrade gives new keys."""
    import hashlib

    from vtpu_cli import __version__

    h = hashlib.sha256(__version__.encode())
    root = Path(__file__).resolve().parents[1]
    for rel in ("asm/assembler.py", "isa/table.py", "binary/program.py", "binary/siwfile.py"):
        try:
            h.update((root / rel).read_bytes())
        except OSError:
            h.update(rel.encode())
    from vtpu_cli.core.resources import grammar_text

    h.update(grammar_text("vasm.lark").encode())
    return h.hexdigest()


def assemble_cached(text: str, filename: str):
    """``vtpu run prog.vasm`` without loading the assembler (Lark, ~0.1-0.2 s) when this exact source was
    assembled before: the ``.siw`` is kept in a private cache folder and read back through the
    validating decoder, so a damaged entry is an error caught here and simply rebuilt."""
    import hashlib
    import os

    from vtpu_cli.binary import siwfile
    from vtpu_cli.core.errors import FormatError
    from vtpu_cli.core.resources import private_cache_dir

    base = private_cache_dir("asm")
    key = hashlib.sha256(f"{_assembler_digest()}\0{filename}\0{text}".encode()).hexdigest()[:32]
    entry = base / f"{key}.siw" if base is not None else None
    if entry is not None and entry.is_file():
        try:
            return sanitize_names(siwfile.decode(entry.read_bytes(), filename))
        except (FormatError, OSError):
            pass
    from vtpu_cli.asm.assembler import assemble

    program = assemble(text, filename)
    if entry is not None:
        try:
            from vtpu_cli.core.fileio import write_atomic

            write_atomic(str(entry), siwfile.encode(program))
            old = sorted(base.glob("*.siw"), key=lambda p: p.stat().st_mtime)
            for p in old[: max(0, len(old) - ASM_CACHE_MAX)]:
                os.unlink(p)
        except OSError:
            pass
    return program
