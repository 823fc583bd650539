"""Which column slices bound to a name can stay views instead of copies.

``v = slice(x, s, n, axis=1)`` of a tensor of several rows gives ``v`` a *copy* of those columns
(docs/phx.md, "Tensor views"): writing ``v`` later must not change ``x``, and writing ``x`` later must
not change ``v``. When neither can happen before ``v``'s last read, a view that reads ``x``'s columns
in place (rows ``pitch`` bytes apart, ``Scroll.pitch``) gives the same values without the copy. This
pass decides that from the syntax tree alone, conservatively; anything else keeps the copy:

* the statement binds a name made by no other statement, with ``axis=1`` as a literal (the start may be
  any expression: its value is taken when the view is made, as the copy's is), and ``x`` is a plain
  name that no statement binds to a view;
* every other mention of ``v`` is a direct operand of an op that reads such views in place
  (``views.PITCHED``: element-wise ops, ``matmul``, ``matmul_nt``, ``softmax``, ``rmsnorm``, ``quant``,
  ``tmatmul``, ``rope``, ``attend``, ``argmax``, ``topk``, ``sample``, or a ``transpose(v)`` weight of ``matmul``/``matmul_nt``), in a statement after the
  binding in the same statement list (not nested in a loop or branch);
* every statement from the binding to the last use assigns tensor ops to names that are not ``x``
  and not bound to views, or binds another name (bound nowhere else) to a view (no loops, branches,
  calls, row writes or stores in between), and ``x`` is no copy-free concat's result or part (their
  parts are written into the result's storage);
* any sentron count (a view of a state tensor is read under the same barriers as the tensor).
"""

from __future__ import annotations

from lark import Tree

from vtpu_cli.compiler.concats import _names
from vtpu_cli.compiler.lower import _TENSOR_OPS, VIEW_OPS


def _call_name(expr) -> str | None:
    if getattr(expr, "data", None) == "call":
        return str(expr.children[0])
    return None


def _direct_uses(call, pitched: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(names read in place by this op call, every other name it mentions)."""
    fname = str(call.children[0])
    ok: list[str] = []
    other: list[str] = []
    for a in call.children[1:]:
        if a is None:
            continue
        if a.data == "name" and fname in pitched:
            ok.append(str(a.children[0]))
        elif (
            fname in ("matmul", "matmul_nt")
            and a.data == "call"
            and str(a.children[0]) == "transpose"
            and len(a.children) == 2
            and getattr(a.children[1], "data", None) == "name"
        ):
            ok.append(str(a.children[1].children[0]))
        else:
            _names(a, other)
    return ok, other


def _blocks(node, out: list) -> None:
    """Every statement list (the top level and each block) of the tree, outside function bodies."""
    if not isinstance(node, Tree) or node.data == "fn_def":
        return
    if node.data == "block":
        out.append(node.children)
    for ch in node.children:
        _blocks(ch, out)


def plan_column_views(tree, sentrons: int, pitched: tuple[str, ...], concats=None) -> set[int] | None:
    """The ids of the ``slice`` call nodes whose bound column slice stays a view (module docstring).
    ``concats``: the copy-free concat plan (``concats.plan_concats``), whose parts are written into
    their result's storage: a column slice of such a result or part keeps its copy."""
    placed: set[str] = set()
    if concats is not None:
        placed = set(concats.parts) | {g.out for g in concats.by_call.values()}
    writes: dict[str, int] = {}  # name -> statements assigning it (any form)
    view_bound: set[str] = set()
    every: list = []

    def visit(node) -> None:
        if not isinstance(node, Tree):
            return
        d = node.data
        if d == "assign":
            n = str(node.children[0])
            writes[n] = writes.get(n, 0) + 1
            if _call_name(node.children[1]) in VIEW_OPS:
                view_bound.add(n)
        elif d == "multi_assign":
            for t in node.children[:-1]:
                writes[str(t)] = writes.get(str(t), 0) + 1
        elif d == "index_assign":
            writes[str(node.children[0])] = writes.get(str(node.children[0]), 0) + 2
        every.append(node)
        for ch in node.children:
            visit(ch)

    visit(tree)
    mentions: dict[str, int] = {}  # name -> how often a name/index node names it (anywhere)
    for node in every:
        if node.data in ("name", "index"):
            n = str(node.children[0])
            mentions[n] = mentions.get(n, 0) + 1
    lists: list = [list(tree.children)]
    _blocks(tree, lists)
    names_of: dict[int, set[str]] = {}  # statement id -> the names it mentions (computed once)
    chosen: set[int] = set()
    for lst in lists:
        last_mention: dict[str, int] = {}  # name -> the last statement of lst that mentions it
        for k, st in enumerate(lst):
            found: list[str] = []
            _names(st, found)
            names_of[id(st)] = set(found)
            for n in found:
                last_mention[n] = k
        for i, st in enumerate(lst):
            if getattr(st, "data", None) != "assign":
                continue
            v, call = str(st.children[0]), st.children[1]
            if _call_name(call) != "slice" or writes.get(v) != 1:
                continue
            args = [a for a in call.children[1:] if a is not None]
            pos = [a for a in args if a.data != "kwarg"]
            kw = {str(a.children[0]): a.children[1] for a in args if a.data == "kwarg"}
            ax = kw.get("axis")
            if len(pos) != 3 or set(kw) != {"axis"} or getattr(ax, "data", None) != "int_lit":
                continue
            if int(str(ax.children[0])) != 1 or pos[0].data != "name":
                continue
            x = str(pos[0].children[0])
            if x in view_bound or x == v or x in placed:
                continue
            end = last_mention.get(v, i)
            if _last_use_ok(lst, i, end, v, x, view_bound, pitched, mentions, writes, names_of):
                chosen.add(id(call))
    return chosen or None


def _last_use_ok(
    lst: list,
    i: int,
    end: int,
    v: str,
    x: str,
    view_bound: set[str],
    pitched,
    mentions: dict[str, int],
    writes: dict[str, int],
    names_of: dict[int, set[str]],
) -> bool:
    """Whether every read of ``v`` is a pitched operand in ``lst`` after ``i`` (``end``: the last
    statement of ``lst`` that mentions it), with nothing before the last one that could write ``x``
    (or ``v``)."""
    last = i
    seen = 0
    for k in range(i + 1, end + 1):
        st = lst[k]
        mentioned = names_of[id(st)]
        d = getattr(st, "data", None)
        if d in ("assign", "multi_assign"):
            targets = [str(t) for t in st.children[:-1]]
            expr = st.children[-1]
            fname = _call_name(expr)
            if fname not in _TENSOR_OPS or fname in VIEW_OPS:
                if v in mentioned:
                    return False
                continue
            ok, other = _direct_uses(expr, pitched)
            if v in other or v in targets:
                return False
            if v in ok:
                last = k
                seen += sum(1 for n in ok if n == v)
        elif v in mentioned:
            return False
    # every mention of v in the program is one of the uses found here (none elsewhere)
    if mentions.get(v, 0) != seen:
        return False
    for k in range(i + 1, last + 1):
        st = lst[k]
        d = getattr(st, "data", None)
        if d not in ("assign", "multi_assign"):
            return False
        targets = [str(t) for t in st.children[:-1]]
        fname = _call_name(st.children[-1])
        if fname in VIEW_OPS and d == "assign" and writes.get(targets[0]) == 1 and targets[0] != x:
            continue  # another name bound once to a view: nothing is written
        if fname not in _TENSOR_OPS or fname in VIEW_OPS:
            return False
        if x in targets or any(t in view_bound for t in targets):
            return False
    return True
