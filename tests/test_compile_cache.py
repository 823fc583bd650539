"""The compile cache of ``compiler/cache.py``: a model's step programs are read back instead of compiled
at every start, exactly as compiled (the JIT then finds its code under the same key), and anything
wrong with an entry means a compile, never a wrong program."""

from __future__ import annotations

import hashlib
import os
import pickle

import pytest

from vtpu_cli.binary import siwfile
from vtpu_cli.binary.siwfile import encode
from vtpu_cli.compiler import cache
from vtpu_cli.compiler import driver as phx_driver
from vtpu_cli.isa.table import BY_NAME

SRC = """input x: f32[4, 64]
weight w: f32[64, 32]
output y: f32[4, 32]
t = matmul(x, w)
y = relu(t)
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path))
    return tmp_path / "phx"


def _no_compile(*a, **k):
    raise AssertionError("compiled although the cache holds the program")


def test_second_start_reads_the_program_back(cache_dir, monkeypatch):
    prog, rep = cache.compile_cached(SRC, "t.phx", opt=2)
    entries = list(cache_dir.glob("*.pkl"))
    assert len(entries) == 1 and oct(cache_dir.stat().st_mode & 0o777) == "0o700"
    with monkeypatch.context() as m:
        m.setattr(phx_driver, "compile_phx", _no_compile)
        again, rep2 = cache.compile_cached(SRC, "t.phx", opt=2)
    assert again is not prog and again.code == prog.code and again.data == prog.data and rep2 == rep
    assert again.tensors == prog.tensors and again.coord_names == prog.coord_names
    assert again.code[0][0].op is BY_NAME[again.code[0][0].op.name]  # the op table's own objects
    want = hashlib.sha256(encode(prog)).digest()
    with monkeypatch.context() as m:  # both digests are known: neither program is encoded again
        m.setattr(siwfile, "encode", _no_compile)
        assert siwfile.encoding_digest(prog) == want and siwfile.encoding_digest(again) == want
    # other options or another source are other entries
    cache.compile_cached(SRC, "t.phx", opt=3)
    cache.compile_cached(SRC.replace("relu", "silu"), "t.phx", opt=2)
    assert len(list(cache_dir.glob("*.pkl"))) == 3


def test_a_damaged_or_foreign_entry_is_compiled_again(cache_dir):
    prog, _ = cache.compile_cached(SRC, "t.phx", opt=2)
    (entry,) = cache_dir.glob("*.pkl")
    for junk in (b"", b"not a pickle", pickle.dumps(("a", "b", b"c")), pickle.dumps([1, 2, 3])):
        entry.write_bytes(junk)
        got, _ = cache.compile_cached(SRC, "t.phx", opt=2)
        assert got.code == prog.code
        assert pickle.loads(entry.read_bytes())[0].code == prog.code  # rewritten


def test_sources_and_version_are_part_of_the_key(cache_dir, monkeypatch):
    a = cache.entry_path(SRC, {"opt": 2})
    monkeypatch.setattr(cache, "_DIGEST", "0" * 16)
    assert cache.entry_path(SRC, {"opt": 2}) != a


def test_no_private_folder_means_no_cache(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "phx").mkdir(parents=True)
    os.chmod(shared / "phx", 0o777)  # writable by others: never read back from
    monkeypatch.setenv("VTPU_CACHE_DIR", str(shared))
    assert cache.entry_path(SRC, {"opt": 2}) is None
    prog, _ = cache.compile_cached(SRC, "t.phx", opt=2)
    assert prog.code and not list((shared / "phx").glob("*"))


def test_the_jit_finds_its_code_for_a_program_read_back(cache_dir, monkeypatch):
    jc = pytest.importorskip("vtpu_cli.engines.jit.compile")
    from vtpu_cli.compiler import compile_phx

    fresh, _ = compile_phx(SRC, "t.phx", opt=2)
    cache.compile_cached(SRC, "t.phx", opt=2)
    read, _ = cache.compile_cached(SRC, "t.phx", opt=2)
    v = ("none", False)
    with monkeypatch.context() as m:  # the key of the program read back needs no encoding
        m.setattr(siwfile, "encode", _no_compile)
        key = jc.program_key(read, v, 2)
    assert key == jc.program_key(fresh, v, 2)
    read.outputs.clear()  # a program changed after it was read: its digest is computed again
    assert siwfile.encoding_digest(read) == hashlib.sha256(encode(read)).digest()


def test_a_failed_write_and_pruning_and_what_is_not_cached(cache_dir, monkeypatch):
    from vtpu_cli.core.errors import VtpuError

    def full(*a, **k):
        raise VtpuError("cannot write: Disk quota exceeded")

    with monkeypatch.context() as m:
        m.setattr(cache, "write_atomic", full)
        prog, _ = cache.compile_cached(SRC, "t.phx", opt=2)  # the start goes on without the cache
    assert prog.code and not list(cache_dir.glob("*.pkl"))
    monkeypatch.setattr(cache, "ENTRIES", 2)
    for act in ("relu", "silu", "relu2"):
        cache.compile_cached(SRC.replace("relu", act), "t.phx", opt=2)
    assert len(list(cache_dir.glob("*.pkl"))) == 2
    cache.compile_cached(SRC, "t.phx", opt=2, tune=True)  # tile choices from another file: not kept
    assert len(list(cache_dir.glob("*.pkl"))) == 2


def test_key_has_the_file_name_and_cpu_vendor(cache_dir, monkeypatch):
    from vtpu_cli.compiler import tune

    a = cache.entry_path(SRC, {"opt": 2})
    monkeypatch.setattr(tune, "cpu_vendor", lambda: "other")
    assert cache.entry_path(SRC, {"opt": 2}) != a
    got, _ = cache.compile_cached(SRC, "a.phx", opt=2)
    other, _ = cache.compile_cached(SRC, "b.phx", opt=2)
    assert (got.source_file, other.source_file) == ("a.phx", "b.phx")


def _remembered(prog) -> bytes | None:
    hit = siwfile._DIGESTS.get(id(prog))
    return hit[2] if hit is not None and hit[0]() is prog and hit[1] == siwfile._state(prog) else None


def test_a_changed_program_has_no_remembered_digest(cache_dir):
    prog, _ = cache.compile_cached(SRC, "t.phx", opt=2)
    assert _remembered(prog) is not None
    prog.lines[0] += 1
    assert _remembered(prog) is None


def test_a_data_scroll_edited_in_place_forgets_the_digest(cache_dir):
    """(``bind_inputs`` puts a tensor's bytes into its data scroll object: the same object, new bytes.)"""
    prog, _ = cache.compile_cached(SRC, "t.phx", opt=2)
    assert _remembered(prog) is not None
    d = next(d for d in prog.data if d.nbytes)
    d.data = b"\x01" * d.nbytes
    assert _remembered(prog) is None
    assert siwfile.encoding_digest(prog) == hashlib.sha256(encode(prog)).digest()
