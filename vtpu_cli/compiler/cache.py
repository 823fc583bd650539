"""A disk cache of compiled programs, for callers that compile the same source at every start.

A model's step programs are the same text at every ``vtpu generate`` / ``vtpu serve`` start; compiling
them is ~20-75 ms per variant, reading one back ~8 ms. Entries live in ``cache_base()/phx`` (a folder
private to the user, as the grammar tables: the entries are pickles), named by a SHA-256 of the
source, the file name and compile options, the CPU vendor, vtpu's version and the sources of
everything that shapes the output (compiler, op table, program classes, grammar), so any edit or
upgrade compiles afresh. An entry also keeps the SHA-256 of the program's .siw encoding, handed to
``siwfile.remember_digest`` when it is read back (the JIT keys its code cache by it). An entry that
cannot be read is compiled again and rewritten; nothing is cached without a private folder.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from vtpu_cli import __version__
from vtpu_cli.core.errors import VtpuError
from vtpu_cli.core.fileio import write_atomic

_DIGEST: str | None = None


_PARTS = ("compiler", "isa", "binary", "core")  # packages whose sources shape a compile


def sources_digest() -> str:
    """SHA-256 (hex, 16 digits) of vtpu's version and the name, size and modification time of every
    source that shapes a compile (compiler, op table, program classes, grammar) -- what Python itself
    checks before it reuses a module's bytecode --, once per process."""
    global _DIGEST
    if _DIGEST is None:
        root = Path(__file__).resolve().parents[1]
        h = hashlib.sha256(__version__.encode())
        paths = [p for part in _PARTS for p in sorted((root / part).glob("*.py"))]
        grammar = root / "grammar" / "phx.lark"
        paths.append(grammar if grammar.is_file() else root.parent / "grammar" / "phx.lark")
        for path in paths:
            st = path.stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        _DIGEST = h.hexdigest()[:16]
    return _DIGEST


def entry_path(text: str, options: dict) -> Path | None:
    """Where the compile of ``text`` with ``options`` is kept, or None without a private cache folder."""
    from vtpu_cli.core.resources import private_cache_dir

    base = private_cache_dir("phx")
    if base is None:
        return None
    from vtpu_cli.compiler.tune import cpu_vendor

    # the host's CPU vendor picks some loop forms' stream counts (kernels.AMD): part of the key, so a
    # cache folder shared by hosts of both vendors never hands one the other's program
    ident = f"{sources_digest()}\0{cpu_vendor()}\0{sorted(options.items())!r}\0{text}"
    return base / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.pkl"


def compile_cached(text: str, filename: str = "<input>", **options):
    """``compile_phx(text, filename, **options)``, read from the cache when an entry exists (then the
    report's ``compile_s`` is that of the compile that made it). Compiles with tuning on (whose tile
    choices come from another file) are not cached."""
    from vtpu_cli.binary.program import Program
    from vtpu_cli.binary.siwfile import encoding_digest, remember_digest

    path = None if options.get("tune") else entry_path(text, {**options, "filename": filename})
    if path is not None and path.is_file():
        try:
            got = pickle.loads(path.read_bytes())
            if (
                isinstance(got, tuple)
                and len(got) == 3
                and isinstance(got[0], Program)
                and isinstance(got[1], dict)
                and isinstance(got[2], bytes)
            ):
                remember_digest(got[0], got[2])  # the JIT's cache key without encoding it again
                return got[0], got[1]
        except Exception:  # noqa: BLE001 - a damaged or stale entry: compile again below
            pass
    from vtpu_cli.compiler.driver import compile_phx  # (the compiler is imported only for a miss)

    prog, report = compile_phx(text, filename, **options)
    if path is not None:
        digest = encoding_digest(prog)
        try:
            write_atomic(path, pickle.dumps((prog, report, digest), protocol=pickle.HIGHEST_PROTOCOL))
            _prune(path.parent)
        except (OSError, VtpuError):
            pass  # a full or read-only disk: the next start compiles again
    return prog, report


ENTRIES = 64  # entries kept (~120-170 KB each for a 2B step variant); the least recently written go


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime_ns)
    for old in entries[: max(0, len(entries) - ENTRIES)]:
        old.unlink(missing_ok=True)
