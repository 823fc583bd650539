"""Which ``concat`` statements need no copy: their parts can be computed straight into the result.

``c = concat(a, b)`` copies ``a`` and ``b`` into ``c``. When the parts are tensors the program computes
itself, just for the concat, each part can instead be *placed* in the result's storage when it is
made (``a`` becomes a view of ``c``'s first bytes, ``b`` of the next ones), so the concat has nothing
left to copy (``views.place_part``, ``views._concat``). That is only invisible when nothing can tell
the difference, which this pass decides from the syntax tree alone, conservatively:

* every part is a name made by exactly one statement, ``part = op(...)`` or ``..., part, ... =
  op(...)`` with a tensor op that is not a view op, in the same statement list as the concat, before
  it, the parts in concat order; no part is declared, written any other way (row writes, calls,
  ``store``), bound to a view (``v = slice(part, ...)``), used in a function, or part of two concats;
* the result is written only by the concat: a new name, or a declared ``output`` or
  unplaced ``tensor``, under the same rules as a part, and nothing between the first part's statement
  and the concat mentions it (in a loop, an earlier trip's result must stay intact until the concat);
* ``axis=0``, or ``axis=1`` (parts of several rows: when the result's shape is known before the first
  part is made -- declared, or found by a first lowering, ``driver._front`` -- and each part's op
  writes rows apart; checked when placing);
* any sentron count: every part and result is a sentron's private tensor.

A part or result used anywhere else only as an operand of a tensor op stays a plain read. Anything
this pass accepts but the lowering finds different (a part of another dtype or shape, placed out of
order) falls back to the copy: placing is an optimisation, never a change of meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lark import Tree

from vtpu_cli.compiler.lower import _TENSOR_OPS, VIEW_OPS


@dataclass
class Group:
    """One copy-free concat: ``out = concat(*parts, axis=axis)`` and, while lowering, where its parts
    went (``arena``: the result's storage; ``offset``: bytes placed so far)."""

    out: str
    parts: list[str]
    axis: int
    declared: bool
    arena: object = None
    offset: int = 0
    placed: list[str] = field(default_factory=list)
    call_id: int = 0  # id of the concat's call node (stable for the tree: keys shapes found by a first pass)


@dataclass
class Plan:
    parts: dict[str, tuple[Group, int]]  # part name -> (its concat, its index there)
    by_call: dict[int, Group]  # id of the concat's call node -> its group


@dataclass
class _Uses:
    writes: list = field(default_factory=list)  # (statement, block, index) of each defining statement
    bad: bool = False  # used in a way that might write it or observe its storage


def _names(node, out: list[str]) -> None:
    """Every tensor or variable name mentioned in an expression subtree."""
    if not isinstance(node, Tree):
        return
    if node.data in ("name", "index"):
        out.append(str(node.children[0]))
    for ch in node.children:
        _names(ch, out)


def _op_reads(expr, uses: dict[str, _Uses]) -> None:
    """The names in a tensor op's arguments: plain reads. Anything else in ``expr``: not plain."""
    if getattr(expr, "data", None) == "call" and str(expr.children[0]) in _TENSOR_OPS:
        if str(expr.children[0]) not in VIEW_OPS:
            return  # reads only (names inside view calls used as operands too)
    names: list[str] = []
    _names(expr, names)
    for n in names:
        uses.setdefault(n, _Uses()).bad = True


def plan_concats(tree, sentrons: int) -> Plan | None:
    """The concats of ``tree`` that can take their parts in place (module docstring), or None. With
    several sentrons every part and result is a sentron's private tensor (a declared output's working
    copy included), so placing them is each sentron's own business; a part that an op shares out
    (``shard=``) is placed only where its op can write it there (``_result``'s ``pitched_ok``)."""
    uses: dict[str, _Uses] = {}
    declared: dict[str, bool] = {}  # name -> may be a concat's result (output / unplaced tensor)
    concats: list[tuple] = []  # (statement, block, index)

    def stmt(st, blk: list, i: int, in_fn: bool) -> None:
        d = getattr(st, "data", None)
        if in_fn:  # a function's tensors are its caller's: none of them is touched
            names: list[str] = []
            _names(st, names)
            for ch in st.children if isinstance(st, Tree) else ():
                if getattr(ch, "type", None) == "NAME":
                    names.append(str(ch))
            for n in names:
                uses.setdefault(n, _Uses()).bad = True
            if d in ("for_stmt", "if_stmt", "kernel", "block", "if_block"):
                for ch in st.children:
                    walk(ch, True)
            return
        if d == "assign":
            name, expr = st.children
            uses.setdefault(str(name), _Uses()).writes.append((st, blk, i))
            if getattr(expr, "data", None) == "call" and str(expr.children[0]) == "concat":
                concats.append((st, blk, i))
                return
            if getattr(expr, "data", None) == "call" and str(expr.children[0]) in VIEW_OPS:
                uses[str(name)].bad = True  # a view binding: the name then aliases another tensor
            _op_reads(expr, uses)
        elif d == "multi_assign":
            *names_, expr = st.children
            for n in names_:
                uses.setdefault(str(n), _Uses()).writes.append((st, blk, i))
            _op_reads(expr, uses)
        elif d == "index_assign":
            name, idx, expr = st.children
            uses.setdefault(str(name), _Uses()).bad = True
            for e in (idx, expr):
                _op_reads(e, uses)
        elif d in ("let_stmt", "call_stmt"):
            _op_reads(st, uses)
        elif d == "for_stmt":
            for e in st.children[1:4]:
                _op_reads(e, uses)
            walk(st.children[4], False)
        elif d == "if_stmt":
            _op_reads(st.children[0], uses)
            _op_reads(st.children[2], uses)
            for ch in st.children[3:]:
                if ch is not None:
                    walk(ch, False)
        elif d == "if_block":
            stmt(st.children[0], blk, i, False)
        elif d == "kernel":
            walk(st.children[1], False)
        elif d == "fn_def":
            walk(st.children[-1], True)
        elif d == "tensor_decl":
            role = (
                str(st.children[0].children[0]) if isinstance(st.children[0], Tree) else str(st.children[0])
            )
            declared[str(st.children[1])] = role == "output" or (role == "tensor" and st.children[4] is None)
        elif isinstance(st, Tree):
            _op_reads(st, uses)

    def walk(node, in_fn: bool) -> None:
        if getattr(node, "data", None) == "block":
            lst = node.children
            for i, st in enumerate(lst):
                if st is not None and hasattr(st, "data"):
                    stmt(st, lst, i, in_fn)
        elif node is not None and hasattr(node, "data"):
            stmt(node, [node], 0, in_fn)

    top = list(tree.children)
    for i, it in enumerate(top):
        if it is not None and hasattr(it, "data"):
            stmt(it, top, i, False)

    plan = Plan({}, {})
    taken: set[str] = set()
    for st, blk, i in concats:
        out, call = str(st.children[0]), st.children[1]
        args = [a for a in call.children[1:] if a is not None]
        pos = [a for a in args if a.data != "kwarg"]
        kw = {str(a.children[0]): a.children[1] for a in args if a.data == "kwarg"}
        if len(pos) < 2 or any(a.data != "name" for a in pos) or set(kw) - {"axis"}:
            continue
        axis = 0
        if "axis" in kw:
            ax = kw["axis"]
            if ax.data != "int_lit" or int(str(ax.children[0])) not in (0, 1):
                continue
            axis = int(str(ax.children[0]))
        parts = [str(a.children[0]) for a in pos]
        if len(set(parts)) != len(parts) or out in parts or taken & {out, *parts}:
            continue
        u = uses.get(out, _Uses())
        if u.bad or len(u.writes) != 1 or (out in declared and not declared[out]):
            continue
        where = []
        for p in parts:
            pu = uses.get(p)
            if pu is None or pu.bad or len(pu.writes) != 1 or p in declared:
                break
            pst, pblk, pi = pu.writes[0]
            if pblk is not blk or pi >= i:
                break
            where.append(pi)
        else:
            if where != sorted(set(where)):
                continue  # parts made out of order (or by one statement): placing them would not line up
            mentioned: list[str] = []
            for s in blk[where[0] : i]:
                _names(s, mentioned)
                mentioned += [
                    str(c) for c in getattr(s, "children", ()) if getattr(c, "type", None) == "NAME"
                ]
            if out in mentioned:
                continue
            g = Group(out, parts, axis, out in declared, call_id=id(call))
            for k, p in enumerate(parts):
                plan.parts[p] = (g, k)
            plan.by_call[id(call)] = g
            taken |= {out, *parts}
    return plan if plan.by_call else None
