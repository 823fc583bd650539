"""Tensor views: ``slice``, ``reshape``, ``transpose`` and ``concat`` (docs/phx.md, "Tensor views").

Every tensor is a dense row-major byte range, so a slice along the leading dimension and a reshape
are *views*: a scroll entry (``ir.Scroll`` with ``view_of``/``offset``) that shares its base tensor's
coordinate register and adds the view's first byte to every address (an immediate for a constant
start, one ``DADD`` per access for a runtime start). Nothing is copied and a write through a view
lands in the base tensor. A column slice of a multi-row tensor, a transpose and a concat are not
contiguous in their base tensors, so they are *materialised* (copied into a tensor of their own) --
except ``matmul(x, transpose(w))``, which reads ``w`` in place as ``matmul_nt(x, w)`` (and the other
way round), a column slice read by an element-wise op (its rows ``pitch`` bytes apart, read in
place: ``tensors._rowwise``), and a concat whose parts the program computes for it: they are made in its
storage (``place_part``; which concats qualify: ``concats.py``).

Binding rules (``v = slice(...)``): a name that is new or already names a view is (re)bound to the
view; a name that is a tensor (declared or assigned before) receives a copy, like ``y = copy(x)``.
"""

from __future__ import annotations

from lark import Token, Tree

from vtpu_cli.compiler import kernels
from vtpu_cli.compiler.ir import MemInfo, Scroll, VMem, VReg, imm
from vtpu_cli.compiler.lower import ELEM_BYTES, VIEW_OPS, Lowerer, Tensor, _pos, _try_const, tensor_nbytes

ELEMENTWISE = ("add", "sub", "mul", "relu", "relu2", "silu", "exp", "copy")
# ops handed column slices of several rows as they are (rows ``Scroll.pitch`` bytes apart), read in place;
# every other op gets a dense copy (``dense``, from ``Lowerer.tensor_arg``)
PITCHED = (
    *ELEMENTWISE,
    "matmul",
    "matmul_nt",
    "rmsnorm",
    "softmax",
    "tmatmul",
    "quant",
    "rope",
    "attend",
    "argmax",
    "topk",
    "sample",
)
# keyword operands read rows apart too (``tensors._epilogue`` walks the residual's rows with their pitch)
PITCHED_KW = {"tmatmul": ("add",)}


def reads_rows_apart(op: str | None) -> bool:
    """Whether ``op`` takes a column slice as it lies (else ``Lowerer.tensor_arg`` densifies it); a
    concat reading its parts decides itself (``_placed``, then ``dense``)."""
    return op == "concat" or op in PITCHED


UNROLL_BYTES = 512  # contiguous copies up to 8 vectors are unrolled (static offsets, exact aliasing)
CONCAT_ROW_LOOP_PARTS = 6  # a column concat copy of more parts runs a row loop per part (registers)


# ---------------------------------------------------------------------- entry points (lower.py)
def operand(lw: Lowerer, node) -> Tensor:
    """A view op used as an operand (``matmul(slice(x, 0, 4), w)``): a view, or a materialised
    anonymous tensor for transpose/concat/column slices."""
    return build(lw, node)


def resolve_args(lw: Lowerer, fname: str, call, temps: list[str], targets=()) -> tuple[str, object]:
    """Replace view calls among the positional arguments of a tensor op by the names of the tensors
    they make (registered in ``lw.tensors`` under names listed in ``temps``, removed after the
    statement), so every op takes them like named tensors. ``matmul(x, transpose(w))`` becomes
    ``matmul_nt(x, w)`` (w read in place) and ``matmul_nt(x, transpose(w))`` becomes ``matmul(x, w)``;
    an element-wise op reads ``transpose(a)`` in place where :func:`transposed_ok` says it may
    (``targets``: the statement's result names)."""
    args = list(call.children[1:])
    pos = [i for i, a in enumerate(args) if a is not None and a.data != "kwarg"]
    has_kw = any(a is not None and a.data == "kwarg" for a in args)
    if fname in ("matmul", "matmul_nt") and len(pos) == 2 and not has_kw:
        a = args[pos[1]]
        if _is_call(a, "transpose") and len(a.children) == 2 and a.children[1].data != "kwarg":
            fname = "matmul_nt" if fname == "matmul" else "matmul"
            args[pos[1]] = a.children[1]
    changed = False

    def named(node, t: Tensor) -> Tree:
        """``t`` registered under a temporary name, and that name as a tree in ``node``'s place."""
        key = f"$view{len(temps)}.{lw.view_count}"
        lw.tensors[key] = t
        temps.append(key)
        line, col, _ = _pos(node)
        return Tree("name", [Token("NAME", key, line=line, column=col)], meta=node.meta)

    for i, a in enumerate(args):  # keyword operands read rows apart (PITCHED_KW): column slices in place
        if a is not None and a.data == "kwarg" and str(a.children[0]) in PITCHED_KW.get(fname, ()):
            v = a.children[1]
            if _is_call(v, "slice"):
                args[i] = Tree("kwarg", [a.children[0], named(v, build(lw, v, pitched=True))], meta=a.meta)
                changed = True
    for i in pos:
        a = args[i]
        if a.data == "call" and str(a.children[0]) in VIEW_OPS:
            a_t = fname == "matmul" and i == pos[0] and len(pos) == 2 and not has_kw  # matmul's x
            is_t = _is_call(a, "transpose") and len(a.children) == 2 and a.children[1].data != "kwarg"
            if is_t and (a_t or (fname in ELEMENTWISE and transposed_ok(lw, a, call, targets))):
                t = _transposed_operand(lw, a)  # read in place, column by column
            else:
                t = build(lw, a, pitched=fname in PITCHED)
            args[i] = named(a, t)
            changed = True
    if not changed and fname == str(call.children[0]):
        return fname, call
    head = Token("NAME", fname, line=call.children[0].line, column=call.children[0].column)
    return fname, Tree("call", [head, *args], meta=call.meta)


def check_overlap(lw: Lowerer, name_toks, fname: str, call) -> None:
    """Refuse a statement that writes part of a tensor while reading another, overlapping part of
    it through a view: the tiled code reads and writes in chunk order, so the result would depend on
    the tiling. Reading exactly the elements written (``v = add(v, 1)``) is fine."""
    target = lw.tensors.get(str(name_toks[0]))
    if target is None:
        return
    troot, toff = _root(lw, target)
    for a in call.children[1:]:
        if a is None or a.data != "name":
            continue
        src = lw.tensors.get(str(a.children[0]))
        if src is None:
            continue
        sroot, soff = _root(lw, src)
        if sroot != troot or (target.role != "view" and src.role != "view"):
            continue
        if isinstance(toff, int) and isinstance(soff, int):  # constant places: overlapping at all?
            if _disjoint(lw, target, toff, src, soff):
                continue  # disjoint parts of one tensor (e.g. two parts of a copy-free concat)
        same = (toff is soff or (isinstance(toff, int) and toff == soff)) and src.shape == target.shape
        if fname in ELEMENTWISE and same:
            continue
        if target.role != "view" and fname in ("matmul", "matmul_nt", "tmatmul"):
            continue  # computed into a scratch tensor first (tensors._in_place)
        lw.fail(
            a,
            f"`{name_toks[0]} = {fname}(...)` writes `{target.name}` while reading an overlapping view "
            f"of the same tensor",
            hint="compute into a new tensor, then copy it",
        )


def _disjoint(lw: Lowerer, t: Tensor, toff: int, s: Tensor, soff: int) -> bool:
    """Whether two views of one storage at constant places share no byte: their spans do not overlap,
    or both are column slices of the same rows (one pitch) whose column ranges do not."""
    tsc, ssc = lw.b.scrolls[t.scroll], lw.b.scrolls[s.scroll]
    if toff + tsc.nbytes <= soff or soff + ssc.nbytes <= toff:
        return True
    p = tsc.pitch or ssc.pitch
    if p is None:
        return False

    def cols(sc, off, shape) -> tuple[int, int] | None:  # (first, end) byte of every row, or None
        row = shape[-1] * ELEM_BYTES[sc.dtype]
        if sc.pitch != p or off % p + row > p:
            return None
        return off % p, off % p + row

    a, c = cols(tsc, toff, t.shape), cols(ssc, soff, s.shape)
    return a is not None and c is not None and (a[1] <= c[0] or c[1] <= a[0])


def assign(lw: Lowerer, name_toks, call) -> None:
    """``v = slice(...)`` etc.: bind a new name (or a view name) to the view, copy into a tensor."""
    if len(name_toks) != 1:
        lw.fail(call, f"{call.children[0]}() returns one tensor")
    tok = name_toks[0]
    name = str(tok)
    existing = lw.tensors.get(name)
    if existing is None and lw.lookup(name) is not None:
        lw.fail(tok, f"`{name}` is a register variable, not a tensor")
    if existing is None or existing.role == "view":
        t = build(lw, call, bind=name)
        if t.role == "view":
            t.name = name
            t.line = _pos(tok)[0]
            lw.tensors[name] = t
        return
    if existing.role in ("input", "weight"):
        lw.fail(tok, f"cannot assign to {existing.role} tensor `{name}`")
    build(lw, call, dest=existing, dest_tok=tok)


# ---------------------------------------------------------------------- building views


def _is_call(node, name: str) -> bool:
    return getattr(node, "data", None) == "call" and str(node.children[0]) == name


def build(
    lw: Lowerer,
    call,
    dest: Tensor | None = None,
    bind: str | None = None,
    dest_tok=None,
    pitched: bool = False,
) -> Tensor:
    """The tensor a view op makes. ``dest``: a tensor to copy/materialise the result into (shape
    checked); ``bind``: the name a materialised result gets (else it is anonymous); ``pitched``: the
    operand of an element-wise op, which reads a column slice of several rows in place (``pitch``)."""
    fname = str(call.children[0])
    args = [a for a in call.children[1:] if a is not None]
    pos = [a for a in args if a.data != "kwarg"]
    kw = {str(a.children[0]): a.children[1] for a in args if a.data == "kwarg"}
    allowed = {"slice": ("axis",), "concat": ("axis",)}.get(fname, ())
    for k, v in kw.items():
        if k not in allowed:
            lw.fail(v, f"unknown keyword argument `{k}`", hint=f"allowed: {', '.join(allowed) or 'none'}")
    if fname == "slice":
        return _slice(lw, call, pos, kw, dest, bind, dest_tok, pitched)
    if fname == "reshape":
        return _reshape(lw, call, pos, dest, dest_tok)
    if fname == "transpose":
        return _transpose(lw, call, pos, dest, bind, dest_tok)
    return _concat(lw, call, pos, kw, dest, bind, dest_tok)


def _root(lw: Lowerer, t: Tensor) -> tuple[str, int | VReg]:
    """(alias key of the storage, first byte of t there)."""
    sc = lw.b.scrolls[t.scroll]
    off = sc.offset if sc.view_of is not None else 0
    return sc.alias or t.scroll, off


def _src(lw: Lowerer, node) -> Tensor:
    t = lw.tensor_arg(node)
    if t.dtype == "t2":
        lw.fail(node, f"`{t.name}` is a t2 (ternary) weight stored in tiles; it has no views")
    return t


def _const_int(lw: Lowerer, node, what: str) -> int:
    c = _try_const(lw, node)
    if not isinstance(c, int):
        lw.fail(node, f"{what} is an integer constant")
    return c


def _axis(lw: Lowerer, kw, t: Tensor) -> int:
    if "axis" not in kw:
        return 0
    ax = _const_int(lw, kw["axis"], "axis")
    if ax not in range(len(t.shape)):
        lw.fail(kw["axis"], f"axis {ax} is outside 0..{len(t.shape) - 1} for `{t.name}` {list(t.shape)}")
    return ax


def _start(lw: Lowerer, node) -> int | VReg:
    """A slice start: an integer constant or a runtime i64 scalar."""
    c = _try_const(lw, node)
    if c is not None:
        if not isinstance(c, int):
            lw.fail(node, f"a slice start is an integer, found {c!r}")
        return c
    ty, _ = lw.value(node, "i64")
    if ty != "i64":
        lw.fail(node, f"a slice start is an i64 scalar, found {ty}")
    return lw.reg_of(node, "i64")


def _scaled(lw: Lowerer, start: int | VReg, nbytes: int) -> int | VReg:
    if isinstance(start, int):
        return start * nbytes
    r = lw.b.new("r", "view")
    lw.b.emit("DMUL", r, start, imm(nbytes), type="i64")
    return r


def _plus(lw: Lowerer, a: int | VReg, c: int | VReg) -> int | VReg:
    if isinstance(a, int) and isinstance(c, int):
        return a + c
    if isinstance(a, int) and a == 0:
        return c
    if isinstance(c, int) and c == 0:
        return a
    r = lw.b.new("r", "view")
    if isinstance(a, int):
        a, c = c, a
    lw.b.emit("DADD", r, a, c if isinstance(c, VReg) else imm(c), type="i64")
    return r


def view_of(lw: Lowerer, t: Tensor, delta: int | VReg, shape: tuple[int, ...], label: str) -> Tensor:
    """A copy-free view of ``t``: ``shape`` starting ``delta`` bytes into it."""
    b = lw.b
    sc = b.scrolls[t.scroll]
    if sc.view_of is not None:
        parent, total = sc.view_of, _plus(lw, sc.offset, delta)
    else:
        parent, total = t.scroll, delta
    lw.view_count += 1
    key = f"{t.scroll}@v{lw.view_count}"
    psc = b.scrolls[parent]
    nbytes = tensor_nbytes(t.dtype, shape)
    b.scrolls[key] = Scroll(
        key, t.dtype, shape, nbytes, role="view", alias=psc.alias or parent, view_of=parent, offset=total
    )
    base_role, base_name = (t.base_role, t.base_name) if t.role == "view" else (t.role, t.name)
    return Tensor(label, t.dtype, shape, "view", key, t.scale, t.line, base_role, base_name)


def _deliver(lw: Lowerer, view: Tensor, dest: Tensor | None, dest_tok, call) -> Tensor:
    """A view as the op's result: itself, or copied into ``dest``."""
    if dest is None:
        return view
    _check_dest(lw, dest, dest_tok, view.dtype, view.shape, call)
    note_copy(
        lw,
        f"view copied into tensor `{dest.name}` (assigned, so it receives a copy)",
        view.numel * ELEM_BYTES[view.dtype],
    )
    copy_bytes(lw, view.scroll, 0, dest.scroll, 0, lw.b.scrolls[dest.scroll].nbytes)
    return dest


def _check_dest(lw: Lowerer, dest: Tensor, tok, dtype: str, shape: tuple[int, ...], call) -> None:
    fname = str(call.children[0])
    if dest.dtype != dtype:
        lw.fail(tok, f"type mismatch: `{dest.name}` is {dest.dtype} but {fname}(...) makes {dtype}")
    if tuple(dest.shape) != tuple(shape):
        lw.fail(
            tok, f"shape mismatch: `{dest.name}` is {list(dest.shape)} but {fname}(...) makes {list(shape)}"
        )


def _target(lw: Lowerer, dest, bind, dest_tok, call, dtype: str, shape: tuple[int, ...], srcs) -> tuple:
    """Where a materialising op writes: (tensor written, tensor to copy it into afterwards or None)."""
    if dest is not None:
        _check_dest(lw, dest, dest_tok, dtype, shape, call)
        droot = _root(lw, dest)[0]
        if any(_root(lw, s)[0] == droot for s in srcs):  # reads its own destination: via a scratch
            return _anon(lw, dtype, shape), dest
        return dest, None
    if bind is not None:
        return lw.new_private(bind, dtype, shape, _pos(call)[0]), None
    return _anon(lw, dtype, shape), None


def _anon(lw: Lowerer, dtype: str, shape: tuple[int, ...]) -> Tensor:
    t = lw.new_private(f"$mat{lw.private_count}", dtype, shape)
    del lw.tensors[t.name]
    return t


def _finish(lw: Lowerer, out: Tensor, then: Tensor | None) -> Tensor:
    if then is None:
        return out
    note_copy(
        lw,
        f"`{then.name}` is read by the view it receives: made aside, then copied",
        lw.b.scrolls[then.scroll].nbytes,
    )
    copy_bytes(lw, out.scroll, 0, then.scroll, 0, lw.b.scrolls[then.scroll].nbytes)
    return then


# ---------------------------------------------------------------------- slice and reshape
def _slice(lw: Lowerer, call, pos, kw, dest, bind, dest_tok, pitched: bool = False) -> Tensor:
    if len(pos) != 3:
        lw.fail(call, f"slice(x, start, n[, axis=0|1]) takes 3 arguments, got {len(pos)}")
    x = _src(lw, pos[0])
    axis = _axis(lw, kw, x)
    n = _const_int(lw, pos[2], "a slice length")
    dim = x.shape[axis]
    if not 1 <= n <= dim:
        lw.fail(pos[2], f"slice length {n} is outside 1..{dim} (dimension {axis} of `{x.name}`)")
    start = _start(lw, pos[1])
    if isinstance(start, int) and not 0 <= start <= dim - n:
        lw.fail(
            pos[1],
            f"slice {start}..{start + n} is outside dimension {axis} of `{x.name}` {list(x.shape)}",
            hint=f"the start of {n} elements is 0..{dim - n}",
        )
    if isinstance(start, VReg):
        guard_start(lw, x, start, dim - n)
    es = ELEM_BYTES[x.dtype]
    shape = tuple(n if i == axis else d for i, d in enumerate(x.shape))
    label = f"slice({x.name})"
    if axis == 0 or x.shape[0] == 1:  # contiguous: a view
        inner = x.shape[1] * es if (axis == 0 and len(x.shape) == 2) else es
        v = view_of(lw, x, _scaled(lw, start, inner), shape, label)
        return _deliver(lw, v, dest, dest_tok, call)
    bound_view = bind is not None and lw.column_views is not None and id(call) in lw.column_views
    if (pitched and bind is None or bound_view) and dest is None and len(x.shape) == 2:
        # read in place by the op (or, bound to a name, by every op that uses it: colslices.py): rows of
        # n elements, x's row bytes apart; a runtime start (checked above) moves every access by it
        v = view_of(lw, x, _scaled(lw, start, es), shape, label)
        sc = lw.b.scrolls[v.scroll]
        sc.pitch = x.shape[1] * es
        sc.nbytes = (x.shape[0] - 1) * sc.pitch + n * es  # the bytes it spans
        return v
    # a column slice of several rows: one contiguous run per row, copied
    note_copy(lw, f"column slice of `{x.name}` copied", tensor_nbytes(x.dtype, shape))
    out, then = _target(lw, dest, bind, dest_tok, call, x.dtype, shape, [x])
    rows, cols = x.shape
    src_row, dst_row = cols * es, n * es
    s0 = _scaled(lw, start, es)
    b = lw.b
    if isinstance(s0, int) and rows * dst_row <= 4 * UNROLL_BYTES:
        for i in range(rows):
            copy_bytes(lw, x.scroll, s0 + i * src_row, out.scroll, i * dst_row, dst_row)
        return _finish(lw, out, then)
    sp, dp = kernels.ptr(b, s0, "sp"), kernels.ptr(b, 0, "dp")
    kernels.rows_loop(
        b,
        rows,
        [(sp, src_row), (dp, dst_row)],
        lambda: kernels.copy_row_loop(b, x.scroll, sp, out.scroll, dp, dst_row),
    )
    return _finish(lw, out, then)


def guard_start(lw: Lowerer, x: Tensor, start: VReg, hi: int) -> None:
    """A runtime slice start outside 0..hi faults when the view is made, at the slice's source line:
    svISA has no trap op, so the out-of-range path reads one byte just past the end of ``x``'s
    storage scroll (every access is bounds-checked) -- instead of letting the view read or write
    the base tensor's other elements."""
    b = lw.b
    flag = b.new("r")
    bad, ok = b.label("slice_oob"), b.label("slice_ok")
    b.emit("DCMP", flag, start, imm(0), type="i64", mod="lt")
    b.emit("DBRT", bad)
    b.emit("DCMP", flag, start, imm(hi), type="i64", mod="gt")
    b.emit("DBRF", ok)
    b.place(bad)
    sc = b.scrolls[x.scroll]
    store = sc.view_of if sc.view_of is not None else x.scroll
    b.load("i8", b.new("r", "oob"), store, b.scrolls[store].nbytes)
    b.place(ok)


def _reshape(lw: Lowerer, call, pos, dest, dest_tok) -> Tensor:
    if len(pos) not in (2, 3):
        lw.fail(call, f"reshape(x, d0[, d1]) takes 2 or 3 arguments, got {len(pos)}")
    x = _src(lw, pos[0])
    dims = [_const_int(lw, d, "a dimension") for d in pos[1:]]
    if dims.count(-1) > 1:
        lw.fail(call, "at most one dimension of a reshape may be -1")
    if any(d == 0 or d < -1 for d in dims):
        lw.fail(call, f"reshape dimensions are positive (one may be -1), found {dims}")
    known = 1
    for d in dims:
        known *= d if d != -1 else 1
    if -1 in dims:
        if x.numel % known:
            lw.fail(call, f"reshape of `{x.name}` {list(x.shape)} ({x.numel} elements) to {dims}: no fit")
        dims[dims.index(-1)] = x.numel // known
    shape = tuple(dims)
    if _numel(shape) != x.numel:
        lw.fail(
            call,
            f"reshape of `{x.name}` {list(x.shape)} ({x.numel} elements) to {list(shape)} "
            f"({_numel(shape)} elements)",
            hint="a reshape keeps the number of elements",
        )
    return _deliver(lw, view_of(lw, x, 0, shape, f"reshape({x.name})"), dest, dest_tok, call)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# ---------------------------------------------------------------------- transpose and concat
def _transpose(lw: Lowerer, call, pos, dest, bind, dest_tok) -> Tensor:
    if len(pos) != 1:
        lw.fail(call, f"transpose(x) takes 1 argument, got {len(pos)}")
    x = _src(lw, pos[0])
    if len(x.shape) != 2:
        lw.fail(pos[0], f"transpose takes a 2-D tensor; `{x.name}` is {list(x.shape)}")
    if x.dtype not in ("f32", "i32", "i8"):
        lw.fail(pos[0], f"transpose supports f32, i32 and i8 tensors; `{x.name}` is {x.dtype} (packed)")
    rows, cols = x.shape
    note_copy(lw, f"transpose of `{x.name}` materialised", tensor_nbytes(x.dtype, x.shape))
    out, then = _target(lw, dest, bind, dest_tok, call, x.dtype, (cols, rows), [x])
    transpose_into(lw, x, out)
    return _finish(lw, out, then)


def transpose_into(lw: Lowerer, x: Tensor, y: Tensor) -> None:
    """y[j, i] = x[i, j] for f32, i32 and i8 tensors (``L`` lanes: 16 of 4 bytes, 64 of 1): per output
    row j, L source rows at a time by a strided gather (lane i from byte (i*C + j)*e, stride C*e) and
    one contiguous store; a partial last group re-gathers the last L rows (overlapping, same values).
    Fewer than L rows: element by element."""
    b = lw.b
    t = x.dtype
    es = ELEM_BYTES[t]
    lanes = 64 // es
    rows, cols = x.shape
    stride = cols * es
    starts = list(range(0, rows - lanes + 1, lanes))
    if rows >= lanes and rows % lanes:
        starts.append(rows - lanes)

    def col_group(so, do) -> None:
        v = b.new("v", "col")
        p = b.base(x.scroll)
        span = (lanes - 1) * stride + es
        mem = (
            MemInfo(x.scroll, False, so, so + span)
            if isinstance(so, int)
            else MemInfo(x.scroll, False, 0, span, so)
        )
        b.emit("SGATHER", v, VMem(p, so, 1, stride), type=t, mem=mem)
        b.store(t, v, y.scroll, do)

    def element(so, do) -> None:
        r = b.new("r", "el")
        b.load(t, r, x.scroll, so)
        b.store(t, r, y.scroll, do)

    if rows < lanes:
        if rows * cols <= 128:
            for j in range(cols):
                for i in range(rows):
                    element((i * cols + j) * es, (j * rows + i) * es)
            return
        sj, dj = kernels.ptr(b, 0, "sj"), kernels.ptr(b, 0, "dj")

        def row_j() -> None:
            for i in range(rows):
                element(kernels.at(b, sj, i * stride), kernels.at(b, dj, i * es))

        kernels.rows_loop(b, cols, [(sj, es), (dj, rows * es)], row_j)
        return
    if cols * len(starts) <= 32:
        for j in range(cols):
            for i0 in starts:
                col_group((i0 * cols + j) * es, (j * rows + i0) * es)
        return
    sj, dj = kernels.ptr(b, 0, "sj"), kernels.ptr(b, 0, "dj")

    def out_row() -> None:
        if len(starts) <= 8:
            for i0 in starts:
                col_group(kernels.at(b, sj, i0 * stride), kernels.at(b, dj, i0 * es))
            return
        sp, dp = kernels.ptr(b, sj, "sp"), kernels.ptr(b, dj, "dp")

        def group() -> None:
            col_group(sp, dp)
            kernels.bump(b, sp, lanes * stride)
            kernels.bump(b, dp, 64)

        kernels.loop(b, rows // lanes, group, "tcol")
        if rows % lanes:
            col_group(kernels.at(b, sj, (rows - lanes) * stride), kernels.at(b, dj, (rows - lanes) * es))

    kernels.rows_loop(b, cols, [(sj, es), (dj, rows * es)], out_row)


def _concat(lw: Lowerer, call, pos, kw, dest, bind, dest_tok) -> Tensor:
    if len(pos) < 2:
        lw.fail(call, f"concat(a, b, ...[, axis=0|1]) takes at least 2 tensors, got {len(pos)}")
    saved, lw.lowering_op = lw.lowering_op, "concat"  # placed parts are seen as they are (``_placed``)
    try:
        parts = [_src(lw, a) for a in pos]
    finally:
        lw.lowering_op = saved
    first = parts[0]
    axis = _axis(lw, kw, first)
    for node, t in zip(pos[1:], parts[1:], strict=True):
        if t.dtype != first.dtype:
            lw.fail(node, f"type mismatch: concat of {first.dtype} `{first.name}` and {t.dtype} `{t.name}`")
        same = len(t.shape) == len(first.shape) and all(
            a == c for i, (a, c) in enumerate(zip(t.shape, first.shape, strict=True)) if i != axis
        )
        if not same:
            lw.fail(
                node,
                f"shape mismatch: concat along axis {axis} of {list(first.shape)} and {list(t.shape)}",
                hint="all dimensions but the concatenated one must agree",
            )
    total = sum(t.shape[axis] for t in parts)
    shape = tuple(total if i == axis else d for i, d in enumerate(first.shape))
    placed = _placed(lw, call, parts, shape)
    if placed is not None:  # the parts were computed into the result's storage: nothing to copy
        if dest is None:
            return view_of(lw, placed, 0, shape, bind or "concat")
        if dest.scroll == placed.scroll:
            _check_dest(lw, dest, dest_tok, first.dtype, shape, call)  # the same errors as a copy
            return dest
    g = lw.concat_plan.by_call.get(id(call)) if lw.concat_plan is not None else None
    if g is not None and axis == 1 and shape[0] != 1 and not g.declared and id(call) not in lw.concat_shapes:
        lw.concat_shapes_found[id(call)] = shape  # a second lowering may place the parts (driver._front)
    es = ELEM_BYTES[first.dtype]
    if dest is not None and g is not None and g.arena is not None and dest.scroll == g.arena.scroll:
        # parts placed before one that could not be: already where the copy would put them
        done = _already_there(lw, parts, dest, axis, shape, es)
    else:
        done = [False] * len(parts)
    parts = [t if d else dense(lw, t) for t, d in zip(parts, done, strict=True)]
    note_copy(lw, "concat copies its parts", tensor_nbytes(first.dtype, shape))
    # (the parts already in place are dest's own bytes, not copied: dest is written directly)
    srcs = [t for t, d in zip(parts, done, strict=True) if not d]
    out, then = _target(lw, dest, bind, dest_tok, call, first.dtype, shape, srcs)
    b = lw.b
    if axis == 0 or shape[0] == 1:  # each part one contiguous run
        at = 0
        for t, d in zip(parts, done, strict=True):
            nb = lw.b.scrolls[t.scroll].nbytes if not d else tensor_nbytes(t.dtype, t.shape)
            if not d:
                copy_bytes(lw, t.scroll, 0, out.scroll, at, nb)
            at += nb
        return _finish(lw, out, then)
    rows = shape[0]
    widths = [t.shape[1] * es for t in parts]
    out_row = shape[1] * es
    if rows * out_row <= 4 * UNROLL_BYTES:
        for i in range(rows):
            col = 0
            for t, w, d in zip(parts, widths, done, strict=True):
                if not d:
                    copy_bytes(lw, t.scroll, i * w, out.scroll, i * out_row + col, w)
                col += w
        return _finish(lw, out, then)
    if len(parts) <= CONCAT_ROW_LOOP_PARTS:  # one row loop for all parts: a pointer each
        todo = [k for k, d in enumerate(done) if not d]
        cols = [sum(widths[:k]) for k in range(len(parts))]
        sps = {k: kernels.ptr(b, 0, "sp") for k in todo}
        dp = kernels.ptr(b, 0, "dp")

        def row() -> None:
            for k in todo:
                kernels.copy_row_loop(
                    b, parts[k].scroll, sps[k], out.scroll, kernels.at(b, dp, cols[k]), widths[k]
                )

        kernels.rows_loop(b, rows, [*((sps[k], widths[k]) for k in todo), (dp, out_row)], row)
        return _finish(lw, out, then)
    # more parts: a row loop per part (two pointers each); a pointer per part live across one loop ran
    # out of registers at 20 parts (the heads of a 2B-shaped attention on 16 sentrons)
    col = 0
    for t, w, d in zip(parts, widths, done, strict=True):
        if d:
            col += w
            continue
        sp, dp = kernels.ptr(b, 0, "sp"), kernels.ptr(b, col, "dp")
        kernels.rows_loop(
            b,
            rows,
            [(sp, w), (dp, out_row)],
            lambda t=t, w=w, sp=sp, dp=dp: kernels.copy_row_loop(b, t.scroll, sp, out.scroll, dp, w),
        )
        col += w
    return _finish(lw, out, then)


# ---------------------------------------------------------------------- copy-free concat
def place_part(
    lw: Lowerer, name: str, dtype: str, shape: tuple[int, ...], line: int, pitched_ok: bool = False
) -> Tensor | None:
    """A new tensor ``name`` that a copy-free concat takes (``concats.plan_concats``): a view of the
    concat result's storage, right after the parts placed before it -- the result when it is declared,
    else a private scroll that grows part by part. None (an ordinary tensor; the concat then copies)
    when ``name`` is no such part, or it does not line up: placed out of order, or a dtype, shape or
    size the concat could not take in place.

    A part of a column concat (``axis=1``) of several rows is placed only in a declared result (whose
    row length is known before the first part is made) and only when its op can write rows that are
    apart (``pitched_ok``): it is then a column slice of the result, rows ``pitch`` bytes apart."""
    plan = lw.concat_plan
    got = plan.parts.get(name) if plan is not None else None
    if got is None:
        return None
    g, k = got
    if k != len(g.placed) or dtype in ("t2",) or not shape:
        return None
    if g.axis == 1 and len(shape) != 2:
        return None
    if g.axis == 1 and shape[0] != 1:  # columns of several rows: a column slice of the result
        known = g.declared or g.call_id in lw.concat_shapes
        return _place_columns(lw, g, name, dtype, shape, line) if pitched_ok and known else None
    nb = tensor_nbytes(dtype, shape)
    if g.arena is None:
        if g.declared:
            arena = lw.tensors.get(g.out)
            if arena is None or arena.role not in ("output", "tensor") or arena.dtype != dtype:
                return None
        else:
            arena = _anon(lw, dtype, (0,))
        g.arena = arena
    arena = g.arena
    if arena.dtype != dtype:
        return None
    sc = lw.b.scrolls[arena.scroll]
    if g.declared:
        if g.offset + nb > sc.nbytes:
            return None
    else:  # the private result grows by this part (its size is read only when the program is made)
        sc.nbytes += nb
        sc.shape = arena.shape = (sc.nbytes // ELEM_BYTES[dtype],)
    v = view_of(lw, arena, g.offset, shape, name)
    v.line = line
    lw.tensors[name] = v
    g.offset += nb
    g.placed.append(name)
    return v


def _place_columns(lw: Lowerer, g, name: str, dtype: str, shape: tuple[int, ...], line: int) -> Tensor | None:
    """``place_part`` for a column concat of several rows: the columns from byte ``g.offset`` of each row of
    the result (declared, or a private tensor of the shape a first lowering found for it), read and
    written in place (``Scroll.pitch``)."""
    arena = g.arena
    if arena is None:
        arena = lw.tensors.get(g.out) if g.declared else _anon(lw, dtype, lw.concat_shapes[g.call_id])
    if arena is None or arena.role not in ("output", "tensor") or arena.dtype != dtype:
        return None
    if len(arena.shape) != 2 or arena.shape[0] != shape[0]:
        return None
    es = ELEM_BYTES[dtype]
    pitch = arena.shape[1] * es
    width = shape[1] * es
    if g.offset + width > pitch:
        return None
    g.arena = arena
    v = view_of(lw, arena, g.offset, shape, name)
    sc = lw.b.scrolls[v.scroll]
    sc.pitch = pitch
    sc.nbytes = (shape[0] - 1) * pitch + width  # the bytes it spans
    v.line = line
    lw.tensors[name] = v
    g.offset += width
    g.placed.append(name)
    return v


def _already_there(lw: Lowerer, parts: list[Tensor], out: Tensor, axis: int, shape, es: int) -> list[bool]:
    """Per part: whether it is a placed view of ``out`` at exactly the bytes the concat would copy it to
    (the parts placed before one that could not be; ``place_part`` places in order, so a prefix)."""
    done = [False] * len(parts)
    at = 0
    rows_apart = axis == 1 and len(shape) == 2 and shape[0] != 1
    for k, t in enumerate(parts):
        sc = lw.b.scrolls[t.scroll]
        pitch_ok = sc.pitch == shape[1] * es if rows_apart else not sc.pitch
        if sc.view_of != out.scroll or sc.offset != at or not pitch_ok:
            break
        done[k] = True
        at += t.shape[1] * es if rows_apart else tensor_nbytes(t.dtype, t.shape)
    return done


def _placed(lw: Lowerer, call, parts: list[Tensor], shape: tuple[int, ...]) -> Tensor | None:
    """The storage holding a copy-free concat's result when every part was placed there in order and
    fills it exactly (``place_part``), else None."""
    plan = lw.concat_plan
    g = plan.by_call.get(id(call)) if plan is not None else None
    if g is None or g.arena is None or [t.name for t in parts] != g.placed:
        return None
    if g.axis == 1 and len(shape) == 2 and shape[0] != 1:  # column slices of the result, in order
        es = ELEM_BYTES[parts[0].dtype]
        pitch = shape[1] * es
        col = 0
        for t in parts:
            sc = lw.b.scrolls[t.scroll]
            if sc.view_of != g.arena.scroll or sc.offset != col or sc.pitch != pitch:
                return None
            col += t.shape[1] * es
        if col != pitch or tuple(g.arena.shape) != tuple(shape):
            return None
        return g.arena
    off = 0
    for t in parts:
        sc = lw.b.scrolls[t.scroll]
        if sc.view_of != g.arena.scroll or sc.offset != off:
            return None
        off += sc.nbytes
    total = lw.b.scrolls[g.arena.scroll].nbytes
    if off != total or off != tensor_nbytes(parts[0].dtype, shape):
        return None
    return g.arena


# ---------------------------------------------------------------------- copies
def note_copy(lw: Lowerer, what: str, nbytes: int) -> None:
    """Record a copy a view or an in-place write costs, at the statement being lowered, for the compile
    report (``vtpu cc --report``: where the program copies, and why)."""
    key = (lw.b.line or 0, what)
    lw.view_copies[key] = max(lw.view_copies.get(key, 0), nbytes)


def copy_rows(lw: Lowerer, src: Tensor, dst: Tensor) -> None:
    """dst = src for 2-D tensors of one shape, row by row, each side's rows ``pitch`` bytes apart when it
    is a column slice read or written in place (else dense)."""
    b = lw.b
    rows, cols = src.shape
    row = cols * ELEM_BYTES[src.dtype]
    sp = b.scrolls[src.scroll].pitch or row
    dp = b.scrolls[dst.scroll].pitch or row
    if rows * row <= 4 * UNROLL_BYTES:
        for i in range(rows):
            copy_bytes(lw, src.scroll, i * sp, dst.scroll, i * dp, row)
        return
    s, d = kernels.ptr(b, 0, "sp"), kernels.ptr(b, 0, "dp")
    kernels.rows_loop(
        b, rows, [(s, sp), (d, dp)], lambda: kernels.copy_row_loop(b, src.scroll, s, dst.scroll, d, row)
    )


def dense(lw: Lowerer, t: Tensor) -> Tensor:
    """``t`` itself, or, when it is a column slice read in place (``Scroll.pitch``), a dense copy of it
    (an anonymous tensor) for an op that reads rows as contiguous runs."""
    sc = lw.b.scrolls[t.scroll]
    if not sc.pitch:
        return t
    out = _anon(lw, t.dtype, t.shape)
    op = f"`{lw.lowering_op}`" if lw.lowering_op else "an op"
    note_copy(lw, f"`{t.name}` made dense for {op}, which reads whole rows", tensor_nbytes(t.dtype, t.shape))
    if sc.estride:  # a transposed view: materialised from its base
        transpose_into(lw, lw.transposed[t.scroll], out)
    else:
        copy_rows(lw, t, out)
    return out


def transposed_ok(lw: Lowerer, tcall, call, targets) -> bool:
    """Whether an element-wise op may read ``transpose(a)`` in place (``tensors._rowwise``: strided
    gathers, 16 elements of a column at a time): ``a`` is 2-D f32 or i32 with at least 16 rows (a row of the
    view, a column of ``a``, is at least one whole piece: a partial last piece is read as the row's
    last 16 elements, overlapping the piece before), and the result is none of the tensors read --
    not ``a`` (its rows would be written while its columns are read), and with a partial piece not
    any operand (the overlapping piece reads again what the one before wrote)."""
    arg = tcall.children[1]
    if arg.data != "name":
        return False
    a = lw.tensors.get(str(arg.children[0]))
    if a is None or a.dtype not in ("f32", "i32") or len(a.shape) != 2 or a.shape[0] < 16:
        return False
    if lw.b.scrolls[a.scroll].pitch or not targets:
        return False
    dest = lw.tensors.get(str(targets[0]))
    if dest is None:
        return True  # a new tensor: nothing read is written
    droot = _root(lw, dest)[0]
    if _root(lw, a)[0] == droot:
        return False
    if a.shape[0] % 16 == 0:
        return True
    for x in call.children[1:]:
        if x is not None and x.data == "name":
            t = lw.tensors.get(str(x.children[0]))
            if t is not None and _root(lw, t)[0] == droot:
                return False
    return True


def strided_load(lw: Lowerer, v: Tensor, off, est: int) -> VReg:
    """16 elements of a transposed view's row, ``est`` bytes apart from byte ``off`` (an int or a
    register) of its storage: one strided gather."""
    b = lw.b
    r = b.new("v", "col")
    p = b.base(v.scroll)
    span = 15 * est + 4
    mem = (
        MemInfo(v.scroll, False, off, off + span)
        if isinstance(off, int)
        else MemInfo(v.scroll, False, 0, span, off)
    )
    b.emit("SGATHER", r, VMem(p, off, 1, est), type=v.dtype, mem=mem)
    return r


def _transposed_operand(lw: Lowerer, call) -> Tensor:
    """``transpose(a)`` as matmul's first operand: a view of ``a`` whose row r is a's column r (rows 4
    bytes apart, elements a's row bytes apart: ``Scroll.pitch``/``estride``), which the matmul kernels
    read element by element anyway (one broadcast load per x element), so nothing is copied."""
    a = _src(lw, call.children[1])
    if len(a.shape) != 2:
        lw.fail(call.children[1], f"transpose takes a 2-D tensor; `{a.name}` is {list(a.shape)}")
    if a.dtype not in ("f32", "i32"):
        return build(lw, call)  # (the op reports the dtype)
    rows, cols = a.shape
    v = view_of(lw, a, 0, (cols, rows), f"transpose({a.name})")
    sc = lw.b.scrolls[v.scroll]
    sc.pitch, sc.estride = 4, cols * 4
    lw.transposed[v.scroll] = a
    return v


def copy_bytes(lw: Lowerer, src: str, soff: int | VReg, dst: str, doff: int | VReg, nbytes: int) -> None:
    """Copy ``nbytes`` contiguous bytes: unrolled with static offsets when small, else a loop."""
    b = lw.b
    if isinstance(soff, int) and isinstance(doff, int) and nbytes <= UNROLL_BYTES:
        for o in range(0, nbytes, 64):
            nb = min(64, nbytes - o)
            v = b.load("i8", b.new("v"), src, soff + o, nb)
            b.store("i8", v, dst, doff + o, nb)
        return
    kernels.copy_row_loop(b, src, soff, dst, doff, nbytes)
