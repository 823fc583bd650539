"""Writing output files atomically: a temporary file in the same directory, then a rename."""

from __future__ import annotations

from collections.abc import Sequence

from vtpu_cli.core.errors import VtpuError


def write_atomic(path, blob: bytes | Sequence[bytes | memoryview]) -> None:
    """Write via a temporary file in the same directory and rename, so no partial file is left.

    ``blob`` may be a sequence of buffers, written one after the other (no joined copy of a huge file).

    Targets that are not regular files (``/dev/null``, a pipe, a terminal) are written directly: renaming
    over them would replace the device. A new file gets the usual permissions (0666 minus the umask)."""
    import os
    import stat
    import tempfile

    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise VtpuError(f"cannot write {path}: {e.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "wb") as f:
            _write_parts(f, blob)
        return
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vtpu-", suffix=".tmp", dir=d)
    except OSError as e:
        raise VtpuError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            _write_parts(f, blob)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (st.st_mode & 0o7777) if st is not None else (0o666 & ~umask))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write_parts(f, blob) -> None:
    for part in (blob,) if isinstance(blob, (bytes, bytearray, memoryview)) else blob:
        f.write(part)
