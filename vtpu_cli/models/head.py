"""The int8 LM head: the (tied) embedding or ``lm_head`` quantised per row to int8 for phextcc's
``matmul_q8``.

At a 128256-token vocabulary the head is the largest matrix the step reads: as f32 it is 1.3 GB per
token (4x the ternary weights of all 30 layers), as int8 328 MB. Per row n (one output logit):
``ws[n] = max_k |E[n, k]| / 127`` (float32; an all-zero row gets ws = 1) and
``w8[n, k] = clip(rint(E[n, k] / ws[n]), -127, 127)`` with round-half-to-even, computed in float64. The
compiled step then quantises the normed hidden state per token (int8 absmax, like every BitLinear input)
and computes ``logits[n] = (sum_k q[k] w8[n, k]) * ws[n] * (am / 127)``; ``Reference(head="q8")``
computes the same from the same ``w8``/``ws`` in float64.
"""

from __future__ import annotations

import numpy as np

from vtpu_cli.models.weights import DenseTensor

HEAD_CHUNK = 8192


def quantize_head_q8(head: DenseTensor, chunk: int = HEAD_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(w8 int8 [vocab, hidden], ws float32 [vocab]) of ``head``, decoded a row chunk at a time."""
    w8 = np.empty((head.rows, head.cols), np.int8)
    ws = np.empty(head.rows, np.float32)
    for r0 in range(0, head.rows, chunk):
        r1 = min(head.rows, r0 + chunk)
        rows = head.row_range(r0, r1).astype(np.float64)
        am = np.abs(rows).max(axis=1)
        s = np.where(am > 0, am / 127.0, 1.0).astype(np.float32)
        ws[r0:r1] = s
        w8[r0:r1] = np.clip(np.rint(rows / s.astype(np.float64)[:, None]), -127, 127).astype(np.int8)
    return w8, ws
