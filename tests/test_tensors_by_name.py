"""Issue 13, "inputs and outputs by name": phextcc records its declared tensors (and the sentron count) in
the ``.siw`` tensors section; ``vtpu run --mem`` takes them by name and checks dtype, shape, missing
inputs and ``-n`` at load time (exit 2, naming the tensor); ``--out`` keys results by tensor name."""

from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_errors import vtpu

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.asm.disassembler import disassemble
from vtpu_cli.binary import siwfile
from vtpu_cli.binary.program import TENSOR_ROLES, Program, TensorDecl
from vtpu_cli.cli.main import cli
from vtpu_cli.compiler import bind_inputs, compile_phx
from vtpu_cli.core import coords
from vtpu_cli.core.errors import FormatError
from vtpu_cli.machine.tensorfile import read_safetensors, write_safetensors

SRC = """input x: f32[2, 16]
weight w: f32[2, 16] layers 2
weight wt: t2[16, 16] scale 0.5
output y: f32[2, 16]
output z: f32[2, 16]
y = add(x, w[0])
y = add(y, w[1])
z = tmatmul(x, wt)
"""
X = (np.arange(32, dtype=np.float32).reshape(2, 16) - 7) / 4
W = np.stack([np.full((2, 16), 0.5, np.float32), np.full((2, 16), -2.0, np.float32)])
WT = ((np.arange(256).reshape(16, 16) % 3) - 1).astype(np.int8)


def _asm_program() -> Program:
    return assemble(".coord A = 1.1.1/1.1.1/1.1.1\n.output r1\n    DMOV r1, 7\n", "t.vasm")


@pytest.fixture(scope="module")
def prog_file(tmp_path_factory):
    prog, _ = compile_phx(SRC, "s.phx")
    path = tmp_path_factory.mktemp("t13") / "s.siw"
    path.write_bytes(siwfile.encode(prog))
    return path


def _st(path, tensors: dict[str, np.ndarray]):
    dt = {
        np.dtype(np.float32): "f32",
        np.dtype(np.int8): "i8",
        np.dtype(np.int32): "i32",
        np.dtype(np.uint8): "u8",
    }
    write_safetensors(str(path), {k: (dt[a.dtype], a.shape, a.tobytes()) for k, a in tensors.items()})
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli(["run", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _expected_y() -> np.ndarray:
    return X + W[0] + W[1]


# ----------------------------------------------------------------------------- the program records it
def test_compiler_records_declared_tensors_and_sentrons():
    prog, _ = compile_phx(SRC, "s.phx", sentrons=2)
    assert prog.sentrons == 2 and prog.compiled_sentrons() == 2
    got = [(t.name, t.role, t.dtype, t.shape, t.layers) for t in prog.tensors]
    assert got == [
        ("x", "input", "f32", (2, 16), 1),
        ("w", "weight", "f32", (2, 16), 2),
        ("wt", "weight", "t2", (16, 16), 1),
        ("y", "output", "f32", (2, 16), 1),
        ("z", "output", "f32", (2, 16), 1),
    ]
    assert all(t.coord == prog.coord_names[t.name] for t in prog.tensors)
    back = siwfile.decode(siwfile.encode(prog))
    assert back.tensors == prog.tensors and back.sentrons == 2
    text = disassemble(prog)
    assert ".sentrons 2" in text and ".tensor weight w f32[2, 16] " in text and " layers 2" in text
    assert siwfile.encode(assemble(text, "s.vasm")) == siwfile.encode(prog)


def test_old_files_without_the_section_still_load():
    prog = _asm_program()
    blob = siwfile.encode(prog)
    nsec = siwfile.HEADER.unpack_from(blob, 0)[5]
    kinds = [
        siwfile.SECTION.unpack_from(blob, siwfile.HEADER.size + i * siwfile.SECTION.size)[0]
        for i in range(nsec)
    ]
    assert siwfile.SEC_TENSORS not in kinds and nsec == 8
    back = siwfile.decode(blob)
    assert back.tensors == [] and back.sentrons == 0 and back.compiled_sentrons() == 0


# ----------------------------------------------------------------------------- encode/decode properties
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)
DTYPES = st.sampled_from(["f32", "i32", "i8", "t2", "i64", "bf16", "u8", "i16"])


@st.composite
def tensor_tables(draw):
    names = draw(st.lists(NAMES, min_size=0, max_size=6, unique=True))
    out = []
    for n in names:
        role = draw(st.sampled_from(TENSOR_ROLES))
        shape = tuple(draw(st.lists(st.integers(1, 300), min_size=1, max_size=3)))
        part = draw(st.integers(1, 999))
        layers = 1 if role == "output" else draw(st.integers(1, 1000 - part))
        lib = draw(st.integers(1, 999))
        coord = coords.pack_parts((lib, 1, 1, 1, 1, 1, 1, 1, part))
        out.append(TensorDecl(n, role, coord, draw(DTYPES), shape, layers))
    sentrons = draw(st.integers(0 if not out else 1, 64))
    return out, sentrons


@settings(max_examples=60, deadline=None)
@given(tensor_tables())
def test_section_round_trips_through_siw_and_disasm(table):
    tensors, sentrons = table
    prog = _asm_program()
    prog.tensors, prog.sentrons = tensors, sentrons
    blob = siwfile.encode(prog)
    back = siwfile.decode(blob)
    assert back.tensors == tensors and back.sentrons == sentrons
    assert siwfile.encode(assemble(disassemble(back), "t.vasm")) == blob


def _with_section(count: int, body: bytes, sentrons: int = 1) -> bytes:
    """A valid program whose tensors section (the last one) is replaced by ``body`` listing ``count``
    tensors; the table entry and the checksum are recomputed (what an attacker can do)."""
    prog = _asm_program()
    prog.sentrons = sentrons
    blob = siwfile.encode(prog)[: -siwfile.DIGEST_BYTES]
    nsec = siwfile.HEADER.unpack_from(blob, 0)[5]
    at = siwfile.HEADER.size + (nsec - 1) * siwfile.SECTION.size
    kind, _, off, _ = siwfile.SECTION.unpack_from(blob, at)
    assert kind == siwfile.SEC_TENSORS
    body = body + b"\0" * (-len(body) % 8)
    out = bytearray(blob[:off] + body)
    siwfile.SECTION.pack_into(out, at, kind, count, off, len(body))
    return bytes(out) + hashlib.sha256(bytes(out)).digest()


def _entry(role=0, tcode=1, ndim=1, zero=0, cidx=0, layers=1, shape=(4,), name=b"x") -> bytes:
    return (
        siwfile.TENSOR_ENTRY.pack(role, tcode, ndim, zero, cidx, layers)
        + struct.pack(f"<{len(shape)}Q", *shape)
        + struct.pack("<H", len(name))
        + name
    )


HEAD = siwfile.TENSOR_HEAD.pack(1, 0)


def test_crafted_section_is_valid_when_honest():
    prog = siwfile.decode(_with_section(1, HEAD + _entry()))
    assert prog.tensors == [TensorDecl("x", "input", prog.coord_names["A"], "f32", (4,), 1)]


@pytest.mark.parametrize(
    "count, body, message",
    [
        (0xFFFFFFFF, HEAD + _entry(), "lists 4294967295 tensors"),
        (2, HEAD + _entry(), "truncated"),
        (1, HEAD + _entry(role=3), "corrupt tensor entry 0"),
        (1, HEAD + _entry(tcode=15), "corrupt tensor entry 0"),
        (1, HEAD + _entry(zero=1), "corrupt tensor entry 0"),
        (1, HEAD + _entry(cidx=5), "outside the pool"),
        (1, HEAD + _entry(ndim=200, shape=(1,) * 3), "truncated"),
        (1, HEAD + _entry(ndim=0, shape=()), "bad shape"),
        (1, HEAD + _entry(ndim=9, shape=(1,) * 9), "bad shape"),
        (1, HEAD + _entry(shape=(0,)), "bad shape"),
        (1, HEAD + _entry(ndim=2, shape=(1 << 40, 1 << 40)), "declares over"),
        (1, HEAD + _entry(layers=0), "0 layers"),
        (1, HEAD + _entry(layers=1000), "1000 layers"),
        (1, HEAD + _entry(role=2, layers=2), "cannot be a layer stack"),
        (1, HEAD + _entry(name=b"1x"), "not a valid name"),
        (1, HEAD + _entry(name=b"a\x1b[31m"), "not a valid name"),
        (1, HEAD + _entry(name=b"\xff\xfe"), "bad name"),
        (2, HEAD + _entry() + _entry(), "declared twice"),
        (0, siwfile.TENSOR_HEAD.pack(1, 7), "reserved"),
        (0, siwfile.TENSOR_HEAD.pack(1 << 21, 0), "compiled for 2097152 sentrons"),
        (0, b"", "truncated"),
        (0, siwfile.TENSOR_HEAD.pack(0, 0), "non-canonical"),  # an empty section is never written
        (1, HEAD + _entry() + b"\0" * 8, "non-canonical"),  # trailing bytes
    ],
)
def test_hostile_sections_are_format_errors(count, body, message):
    with pytest.raises(FormatError) as e:
        siwfile.decode(_with_section(count, body), "h.siw")
    assert message in e.value.message


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 1 << 32 - 1), st.binary(max_size=96))
def test_random_sections_never_crash(count, body):
    blob = _with_section(count, body)
    try:
        prog = siwfile.decode(blob)
    except FormatError:
        return
    assert siwfile.encode(prog) == blob  # whatever is accepted is the canonical encoding


def test_hostile_file_on_the_command_line_is_exit_2(tmp_path):
    bad = tmp_path / "h.siw"
    bad.write_bytes(_with_section(1, HEAD + _entry(layers=5000)))
    for cmd in ("run", "disasm"):
        r = vtpu(cmd, str(bad))
        assert r.returncode == 2 and "layers" in r.stderr and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- vtpu run by name
@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_name_keyed_mem_and_out_round_trip(engine, prog_file, tmp_path, capsys):
    mem = _st(tmp_path / "in.safetensors", {"x": X, "w": W, "wt": WT})  # w as a whole stack [2, 2, 16]
    out = tmp_path / "out.safetensors"
    rc, stdout, err = _run(capsys, prog_file, "--mem", mem, "--engine", engine, "--out", out, "--json")
    assert rc == 0, err
    doc = json.loads(stdout)
    vals = {o["name"]: np.array(o["value"], np.float32) for o in doc["outputs"]}
    assert np.array_equal(vals["y"], _expected_y())
    got = read_safetensors(str(out))
    assert sorted(got) == ["y", "z"]
    assert np.array_equal(np.frombuffer(got["y"][2], np.float32).reshape(2, 16), _expected_y())
    header = json.loads(out.read_bytes()[8 : 8 + struct.unpack("<Q", out.read_bytes()[:8])[0]])
    prog = siwfile.read(str(prog_file))
    assert header["__metadata__"] == {n: coords.format_packed(prog.coord_names[n]) for n in ("y", "z")}
    # the same weights bound into the program (bind_inputs) give the same z: the i8 matrix was packed alike
    bound = bind_inputs(siwfile.read(str(prog_file)), {"x": X, "w": W, "wt": WT})
    bf = tmp_path / "bound.siw"
    bf.write_bytes(siwfile.encode(bound))
    rc, stdout2, err = _run(capsys, bf, "--engine", engine, "--json")
    assert rc == 0, err
    assert json.loads(stdout2)["outputs"] == doc["outputs"]


def test_keys_by_layer_name_coordinate_and_out_all_feed_back(prog_file, tmp_path, capsys):
    prog = siwfile.read(str(prog_file))
    cw = coords.format_packed(prog.coord_names["w"])
    mem = _st(tmp_path / "in.safetensors", {"x": X, cw: W[0], "w_1": W[1], "wt": WT})
    everything = tmp_path / "all.safetensors"
    rc, stdout, err = _run(
        capsys, prog_file, "--mem", mem, "--engine", "interp", "--json", "--out", everything, "--out-all"
    )
    assert rc == 0, err
    y = np.array(json.loads(stdout)["outputs"][0]["value"], np.float32)
    assert np.array_equal(y, _expected_y())
    keys = set(read_safetensors(str(everything)))
    assert {"x", "w", "w_1", "wt", "y", "z"} <= keys  # t2 travels as its packed bytes (u8)
    rc, stdout2, err = _run(capsys, prog_file, "--mem", everything, "--engine", "interp", "--json")
    assert rc == 0, err
    assert json.loads(stdout2)["outputs"] == json.loads(stdout)["outputs"]


@pytest.mark.parametrize(
    "tensors, needles",
    [
        (
            {"x": X.astype(np.int32), "w": W, "wt": WT},
            ["`x`", "input tensor `x`", "expected f32[2, 16]", "found i32[2, 16]"],
        ),
        ({"x": X.reshape(32), "w": W, "wt": WT}, ["input tensor `x`", "found f32[32]"]),
        ({"x": X, "w": W[:, :1], "wt": WT}, ["weight tensor `w`", "f32[2, 2, 16]", "found f32[2, 1, 16]"]),
        (
            {"x": X, "w": W, "wt": WT.astype(np.float32)},
            ["weight tensor `wt`", "i8[16, 16]", "found f32[16, 16]"],
        ),
        ({"x": X, "w": W, "wt": WT * 2}, ["`wt`", "outside -1, 0, 1"]),
        ({"x": X, "w": W[0]}, ["no data for `w_1`, `wt`"]),
        ({"w": W, "wt": WT}, ["no data for `x`"]),
        ({"x": X, "w": W, "wt": WT, "nope": X}, ["'nope'", "the program's tensors: w, wt, x, y, z"]),
    ],
)
def test_bad_mem_is_exit_2_naming_the_tensor(tensors, needles, prog_file, tmp_path, capsys):
    mem = _st(tmp_path / "in.safetensors", tensors)
    rc, _, err = _run(capsys, prog_file, "--mem", mem, "--engine", "interp")
    assert rc == 2
    flat = " ".join(err.split())
    for n in needles:
        assert n in flat, (n, err)
    assert "in.safetensors" in flat


def test_without_mem_inputs_are_zeros_as_before(prog_file, capsys):
    rc, stdout, err = _run(capsys, prog_file, "--engine", "interp", "--json")
    assert rc == 0, err
    assert json.loads(stdout)["outputs"][0]["value"] == [[0.0] * 16] * 2


def test_bound_program_needs_nothing_from_mem(prog_file, tmp_path, capsys):
    bound = bind_inputs(siwfile.read(str(prog_file)), {"w": W, "wt": WT})
    bf = tmp_path / "bound.siw"
    bf.write_bytes(siwfile.encode(bound))
    rc, stdout, err = _run(
        capsys, bf, "--mem", _st(tmp_path / "x.safetensors", {"x": X}), "--engine", "interp", "--json"
    )
    assert rc == 0, err
    assert np.array_equal(np.array(json.loads(stdout)["outputs"][0]["value"], np.float32), _expected_y())


@pytest.mark.parametrize("compiled, run_n", [(2, 1), (2, 3), (1, 2)])
def test_sentron_count_mismatch_is_exit_2(compiled, run_n, tmp_path, capsys):
    prog, _ = compile_phx("input x: f32[16]\noutput y: f32[16]\ny = relu(x)\n", "r.phx", sentrons=compiled)
    f = tmp_path / "r.siw"
    f.write_bytes(siwfile.encode(prog))
    rc, _, err = _run(capsys, f, "-n", run_n, "--engine", "interp")
    assert rc == 2
    assert f"compiled for {compiled} sentron(s) but the run has {run_n}" in " ".join(err.split())
    rc, _, err = _run(capsys, f, "-n", compiled, "--engine", "interp")
    assert rc == 0, err


def test_old_multi_sentron_file_is_checked_by_its_group(tmp_path, capsys):
    prog, _ = compile_phx("input x: f32[16]\noutput y: f32[16]\ny = relu(x)\n", "r.phx", sentrons=2)
    prog.tensors, prog.sentrons = [], 0  # as written before the tensors section existed
    f = tmp_path / "r.siw"
    f.write_bytes(siwfile.encode(prog))
    rc, _, err = _run(capsys, f, "-n", 1, "--engine", "interp")
    assert rc == 2 and "compiled for 2 sentron(s)" in err


def test_coordinate_names_of_asm_programs_are_keys(tmp_path, capsys):
    src = tmp_path / "p.vasm"
    src.write_text(".coord A = 1.1.1/1.1.1/1.1.1\n.output A.f32\n    DMOV r0, 0\n")
    mem = _st(tmp_path / "a.safetensors", {"A": np.array([1.5, 2.5], np.float32)})
    rc, stdout, err = _run(capsys, src, "--mem", mem, "--engine", "interp", "--json")
    assert rc == 0, err
    assert json.loads(stdout)["outputs"][0]["value"] == [1.5, 2.5]


@pytest.mark.parametrize(
    "line, message",
    [
        (".tensor scratch x f32[4] 1.1.1/1.1.1/1.1.1", "a tensor role is input, weight, output"),
        (".tensor input x f32 1.1.1/1.1.1/1.1.1", "a tensor needs a shape"),
        (".tensor input x f32[4]", "usage: .tensor"),
        (".tensor input x f32[4] 1.1.1/1.1.1/1.1.1 layers", "usage: .tensor"),
        (".tensor input x f32[4] 1.1.1/1.1.1/1.1.998 layers 3", "3 layers from scroll part 998 run past 999"),
        (".tensor input x f32[4] NOWHERE", "expected a coordinate or .coord name"),
        (".tensor input " + "a" * 70000 + " f32[4] 1.1.1/1.1.1/1.1.1", "over 65535"),
        (".sentrons 0", ".sentrons is 1..1048576"),
        (".sentrons 2.5", "usage: .sentrons N"),
    ],
)
def test_tensor_directives_report_errors(line, message):
    from vtpu_cli.core.errors import DiagnosticError

    with pytest.raises(DiagnosticError) as e:
        assemble(f"{line}\n.output r1\n    DMOV r1, 1\n", "t.vasm")
    assert message in str(e.value)


def test_crafted_t2_table_is_an_error_not_a_crash(tmp_path, capsys):
    src = tmp_path / "h.vasm"
    src.write_text(".tensor weight q t2[2, 2, 2] 1.1.1/1.1.1/1.1.1\n.output r1\n    DMOV r1, 1\n")
    mem = _st(tmp_path / "h.safetensors", {"q": np.zeros((2, 2, 2), np.int8)})
    rc, _, err = _run(capsys, src, "--mem", mem, "--engine", "interp")
    assert rc == 2 and "is not a 2-D ternary matrix" in err
