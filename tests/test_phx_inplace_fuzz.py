"""Random programs mixing every in-place view form against the same programs compiled with copies.

Each program draws column slices (inline and bound to names), element-wise ops, matmul, matmul_nt,
matmul of a transposed first operand, softmax, rmsnorm, rope and column concats (placed parts), and copies
a few results to outputs. Reference: the same source compiled with every view materialised (no op
reads rows apart, no concat placement, no bound views) -- the copying semantics the in-place forms
must not be told from. Interpreter runs are compared bit for bit, a few natively on the JIT."""

from __future__ import annotations

import random

import numpy as np
import pytest
from test_phx_views import run_program

import vtpu_cli.compiler.driver as driver
import vtpu_cli.compiler.views as views
from vtpu_cli.compiler import compile_phx
from vtpu_cli.core.errors import DiagnosticError


def _program(rng: random.Random) -> tuple[str, dict, list[str]]:
    rows = rng.randint(2, 6)
    shapes: dict[str, tuple[int, int]] = {}
    decl, body, ins = [], [], {}

    def add_input(name: str, shape: tuple[int, ...]) -> None:
        decl.append(f"input {name}: f32[{', '.join(map(str, shape))}]")
        ins[name] = shape

    for i in range(3):
        shapes[f"x{i}"] = (rows, rng.randint(3, 20))
        add_input(f"x{i}", shapes[f"x{i}"])

    def operand(cols: int | None = None):
        name = rng.choice(list(shapes))
        r, c = shapes[name]
        if r == rows and c >= 2 and rng.random() < 0.5:
            w = rng.randint(1, c - 1) if cols is None else cols
            if w >= c:
                return None
            s = rng.randint(0, c - w)
            return f"slice({name}, {s}, {w}, axis=1)", (r, w)
        if cols is not None and c != cols:
            return None
        return name, (r, c)

    for n in range(1, rng.randint(4, 10)):
        t = f"t{n}"
        kind = rng.choice(
            [
                "unary",
                "binary",
                "matmul",
                "matmul_nt",
                "transposed",
                "softmax",
                "rms",
                "bind",
                "cat",
                "rope",
                "ewt",
            ]
        )
        if kind == "bind":
            name = rng.choice(list(shapes))
            r, c = shapes[name]
            if c >= 2 and r >= 2:
                w = rng.randint(1, c - 1)
                body.append(f"{t} = slice({name}, {rng.randint(0, c - w)}, {w}, axis=1)")
                shapes[t] = (r, w)
        elif kind in ("unary", "softmax", "rms"):
            o = operand()
            if o is None:
                continue
            if kind == "rms":
                add_input(f"g{n}", (o[1][1],))
                body.append(f"{t} = rmsnorm({o[0]}, g{n})")
            else:
                op = "softmax" if kind == "softmax" else rng.choice(["relu", "exp", "copy"])
                body.append(f"{t} = {op}({o[0]})")
            shapes[t] = o[1]
        elif kind == "rope":  # one head of the operand's (even) width; the table a column slice or not
            o = operand()
            if o is None or o[1][1] % 2:
                continue
            r, c = o[1]
            pad = rng.choice([0, 3])
            add_input(f"cs{n}", (r + 2, c + pad))
            tab = f"slice(cs{n}, {pad}, {c}, axis=1)" if pad else f"cs{n}"
            body.append(f"{t} = rope({o[0]}, {tab}, {rng.randint(0, 2)}, heads=1)")
            shapes[t] = o[1]
        elif kind == "binary":
            a = operand()
            b = operand(a[1][1]) if a is not None else None
            if b is not None and b[1] == a[1]:
                body.append(f"{t} = {rng.choice(['add', 'sub', 'mul'])}({a[0]}, {b[0]})")
                shapes[t] = a[1]
        elif kind == "ewt":  # an element-wise op of a transpose (read in place from 16 rows up)
            if rng.random() < 0.6:  # a tall input whose transpose has the program's row count
                name = f"e{n}"
                add_input(name, (rng.choice([16, 20, 33, 64]), rows))
                shapes[name] = ins[name]
            else:
                name = rng.choice(list(shapes))
            r, c = shapes[name]
            body.append(f"{t} = {rng.choice(['relu', 'copy', 'exp'])}(transpose({name}))")
            shapes[t] = (c, r)
        elif kind == "transposed":
            name = rng.choice(list(shapes))
            r, c = shapes[name]
            nn = rng.choice([1, 5, 16, 140])
            add_input(f"w{n}", (r, nn))
            body.append(f"{t} = matmul(transpose({name}), w{n})")
            shapes[t] = (c, nn)
        elif kind in ("matmul", "matmul_nt"):
            o = operand()
            if o is None:
                continue
            (r, k), nn = o[1], rng.choice([1, 5, 16, 20, 140])
            add_input(f"w{n}", (k, nn) if kind == "matmul" else (nn, k))
            body.append(f"{t} = {kind}({o[0]}, w{n})")
            shapes[t] = (r, nn)
        else:  # a column concat of fresh parts
            parts = []
            for j in range(rng.randint(2, 3)):
                o = operand()
                if o is None or o[1][0] != rows:
                    break
                op = rng.choice(["relu", "copy", "softmax", "rope"])
                if op == "rope" and o[1][1] % 2 == 0:
                    add_input(f"cs{n}p{j}", (o[1][0], o[1][1]))
                    body.append(f"{t}p{j} = rope({o[0]}, cs{n}p{j}, 0, heads=1)")
                else:
                    body.append(f"{t}p{j} = {'relu' if op == 'rope' else op}({o[0]})")
                shapes[f"{t}p{j}"] = o[1]
                parts.append(f"{t}p{j}")
            if len(parts) >= 2:
                body.append(f"{t} = concat({', '.join(parts)}, axis=1)")
                shapes[t] = (rows, sum(shapes[p][1] for p in parts))
    outs = []
    for i, x in enumerate([x for x in shapes if x.startswith("t")][-4:]):
        decl.append(f"output o{i}: f32[{shapes[x][0]}, {shapes[x][1]}]")
        body.append(f"o{i} = copy({x})")
        outs.append(f"o{i}")
    return "\n".join(decl + body) + "\n", ins, outs


def _with_copies(src: str, opt: int, loops: bool):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(views, "PITCHED", ())
        mp.setattr(views, "transposed_ok", lambda *a: False)
        mp.setattr(driver, "plan_concats", lambda *a: None)
        mp.setattr(driver, "plan_column_views", lambda *a: None)
        return compile_phx(src, "f.phx", opt=opt, force_loops=loops)[0]


@pytest.mark.parametrize("seed", range(60))
def test_random_programs_match_their_copying_form(tmp_path, seed):
    rng = random.Random(seed)
    src, ins, outs = _program(rng)
    if not outs:
        pytest.skip("no result drawn")
    data = np.random.default_rng(seed)
    inputs = {k: data.standard_normal(s).astype(np.float32) for k, s in ins.items()}
    opt, loops = rng.choice([0, 2, 3]), rng.random() < 0.5
    try:
        ref = _with_copies(src, opt, loops)
    except DiagnosticError:
        with pytest.raises(DiagnosticError):  # the same program is refused either way
            compile_phx(src, "f.phx", opt=opt, force_loops=loops)
        return
    new = compile_phx(src, "f.phx", opt=opt, force_loops=loops)[0]
    want = run_program(ref, inputs, outs, "interp", str(tmp_path))
    got = run_program(new, inputs, outs, "jit" if seed % 8 == 0 else "interp", str(tmp_path))
    for o in outs:
        np.testing.assert_array_equal(got[o], want[o], err_msg=f"{o}\n{src}")


def _functionised(src: str, rng: random.Random) -> str:
    """The same program with some ``t = op(...)`` statements moved into functions that ``return`` the
    op (parameters renamed or not; sometimes an extra parameter named like the caller's target but
    bound to another tensor, which the caller's name must win over)."""
    import re

    lines = src.splitlines()
    known = {ln.split()[1].rstrip(":") for ln in lines if ln.startswith("input ")}
    fns, out = [], []
    for k, ln in enumerate(lines):
        m = re.match(r"^(\w+) = (\w+\(.*\))$", ln)
        if m is None or ln.startswith("o") or rng.random() < 0.4:
            out.append(ln)
            if m is not None:
                known.add(m.group(1))
            continue
        target, expr = m.groups()
        names = [n for n in dict.fromkeys(re.findall(r"\b[a-z]+\d+(?:p\d+)?\b", expr)) if n in known]
        if len(names) > 1 and rng.random() < 0.3:  # the caller's names, swapped: f(t1, t2) binds t2, t1
            params = names[1:] + names[:1]
        else:
            params = [n if rng.random() < 0.5 else f"a{j}" for j, n in enumerate(names)]
        rename = dict(zip(names, params, strict=True))
        body = re.sub(r"\b[a-z]+\d+(?:p\d+)?\b", lambda mm, rn=rename: rn.get(mm.group(0), mm.group(0)), expr)
        args = list(names)
        if target not in params and rng.random() < 0.5 and names:
            params.append(target)
            args.append(names[0])
        fns.append(f"fn f{k}({', '.join(params)}) {{\n  return {body}\n}}")
        out.append(f"{target} = f{k}({', '.join(args)})")
        known.add(target)
    return "\n".join(fns + out) + "\n"


@pytest.mark.parametrize("seed", range(30))
def test_random_programs_in_functions_give_the_same_bits(tmp_path, seed):
    """Statements moved into functions that return their op: the same outputs, bit for bit (returned
    ops write into the caller's tensors, place concat parts, read column slices in place)."""
    rng = random.Random(1000 + seed)
    src, ins, outs = _program(rng)
    if not outs:
        pytest.skip("no result drawn")
    fsrc = _functionised(src, rng)
    data = np.random.default_rng(seed)
    inputs = {k: data.standard_normal(s).astype(np.float32) for k, s in ins.items()}
    opt = rng.choice([0, 2, 3])
    try:
        ref = compile_phx(src, "f.phx", opt=opt)[0]
    except DiagnosticError:
        return
    new = compile_phx(fsrc, "f.phx", opt=opt)[0]
    want = run_program(ref, inputs, outs, "interp", str(tmp_path))
    got = run_program(new, inputs, outs, "jit" if seed % 8 == 0 else "interp", str(tmp_path))
    for o in outs:
        np.testing.assert_array_equal(got[o], want[o], err_msg=f"{o}\n{fsrc}")


@pytest.mark.parametrize("seed", range(24))
def test_random_programs_on_several_sentrons_match_their_copying_form(tmp_path, seed):
    """The random in-place programs compiled for 2 or 3 sentrons (placed concat parts and bound column
    views are each sentron's private tensors): the copying form's bits on the interpreter, which
    checks every access for races, and a few natively."""
    from test_phx_views import run_outputs

    rng = random.Random(2000 + seed)
    src, ins, outs = _program(rng)
    if not outs:
        pytest.skip("no result drawn")
    ns = 2 + seed % 2
    data = np.random.default_rng(seed)
    inputs = {k: data.standard_normal(s).astype(np.float32) for k, s in ins.items()}
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(views, "PITCHED", ())
            mp.setattr(views, "transposed_ok", lambda *a: False)
            mp.setattr(driver, "plan_concats", lambda *a: None)
            mp.setattr(driver, "plan_column_views", lambda *a: None)
            ref = compile_phx(src, "f.phx", opt=2, sentrons=ns)[0]
    except DiagnosticError:
        return
    new = compile_phx(src, "f.phx", opt=2, sentrons=ns)[0]

    want, _ = run_outputs(ref, inputs, outs, "interp", str(tmp_path), ns)
    got, _ = run_outputs(new, inputs, outs, "jit" if seed % 6 == 0 else "interp", str(tmp_path), ns)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=src)
