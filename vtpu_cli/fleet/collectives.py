"""How collectives combine values: defined once, so every engine and transport gets the same bits.

CREDUCE folds the members' contributions in ascending sentron-id order, left to right:
``((c[m0] op c[m1]) op c[m2]) ...``. ``add`` wraps for integers and rounds once per step for f32;
f32 ``min``/``max`` follow DMIN/DMAX (NaN if either is NaN; on equality min ORs the bits so -0 wins,
max ANDs them); an f32 NaN result is canonicalised to 0x7FC00000. CCAST copies the root's bytes.
The JIT's native collectives (``engines/jit/comm.py``) emit the same fold; the differential tests
compare them bit for bit.
"""

from __future__ import annotations

import numpy as np

from vtpu_cli.machine.semantics import _fminmax, canon_nan


def reduction_order(members) -> list[int]:
    """The order contributions are combined in: ascending sentron id."""
    return sorted(members)


def reduce_in_order(contrib: dict[int, np.ndarray], op: str, t: str) -> np.ndarray:
    """Fold ``contrib`` (sentron id -> lanes of type ``t``) with ``op`` in :func:`reduction_order`."""
    acc = None
    for mbr in reduction_order(contrib):
        x = contrib[mbr]
        if acc is None:
            acc = x.copy()
        elif op == "add":
            with np.errstate(all="ignore"):
                acc = acc + x
        elif t == "f32":
            acc = _fminmax("DMIN" if op == "min" else "DMAX", acc, x)
        else:
            acc = np.minimum(acc, x) if op == "min" else np.maximum(acc, x)
    if t == "f32":
        canon_nan(acc)
    return acc
