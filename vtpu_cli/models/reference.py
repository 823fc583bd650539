"""An independent numpy float64 reference forward pass of BitNet b1.58 (the correctness oracle).

It follows the Hugging Face BitNet model, written from the architecture, not from the compiled path:

* h = embedding[token]; per block: h += o_proj(attn_sub_norm(attention(input_norm(h))));
  h += down_proj(ffn_sub_norm(relu(gate_proj(x))**2 * up_proj(x))) with x = post_attention_norm(h);
  logits = final_norm(h) @ embedding^T (tied) or @ lm_head^T.
* RMSNorm: x / sqrt(mean(x**2) + eps) * weight.
* Every ternary projection ("BitLinear") quantises its input per token to int8 by absmax:
  m = max(max|x|, 1e-5); x_q = clip(round(x * 127 / m), -128, 127) with round-half-to-even (what
  torch.round and numpy.rint do); y = (W_ternary @ x_q) * (m / 127) * scale. The integer products are
  exact in float64. Per-token absmax is what the model was trained with, so vtpu uses it for every
  format (llama.cpp's TQ kernels quantise activations per 256-block instead).
* RoPE, rotate-half (NEOX / HF) convention: for head vectors of size d, element i < d/2 pairs with
  i + d/2; angle = pos * theta**(-2i/d); x'[i] = x[i]cos - x[i+d/2]sin, x'[i+d/2] = x[i+d/2]cos + x[i]sin.
* Grouped-query attention: query head h reads KV head h // (heads / kv_heads); scores scaled by
  1/sqrt(d), causal (a query at position p sees keys 0..p), softmax in float64; KV cache per layer.

Options that emulate llama.cpp's numerics (to explain a perplexity difference, not to run the model;
``LLAMA_CPP`` bundles them as llama.cpp build 0c1e570 runs a ``bitnet`` GGUF with ``-fa off``; on a
smooth synthetic model it reproduced llama-perplexity's per-token log-probabilities to 0.005 nats on
average, as close as llama.cpp's flash-attention on and off are to each other):

* ``activations="block256"``: llama.cpp's q8_K input quantisation of TQ1_0/TQ2_0 matmuls: per block
  of 256 inputs along K, in float32: mx = the first element of largest |x|, iscale = -127 / mx,
  q = min(127, rint(iscale * x)), d = 1 / iscale; y = sum_b d_b (W_b . q_b) * scale.
* ``ffn_act="silu"``: llama.cpp's ``bitnet`` graph hard-codes a SiLU GLU (silu(gate) * up); BitNet
  b1.58 (HF ``hidden_act: relu2``) uses relu(gate)**2 * up.
* ``head="f16"``: the hidden state rounded to float16 before the (f16) tied head, as ggml's f16
  matmul converts its f32 operand.
* ``kv="f16"``: q, K and V rounded to float16 (llama.cpp's default f16 KV cache; the f16 matmul
  converts q) and the softmax probabilities rounded to float16 before they multiply V (without
  flash attention ggml converts them for the f16 V matmul).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.sampling import Sampler
from vtpu_cli.models.ternary import TernaryMatrix
from vtpu_cli.models.weights import BitNetModel

ACT_QMAX = 127.0
ACT_EPS = 1e-5
# Ternary matrices of models up to this many weights are unpacked once (float64) to speed the reference.
CACHE_WEIGHTS = 1 << 24
HEAD_CHUNK_ROWS = 8192
QK_K = 256  # llama.cpp's q8_K block
HEADS = ("f32", "q8", "f16")
ACTIVATIONS = ("token", "block256")
FFN_ACTS = ("relu2", "silu")
KV_MODES = ("f64", "f16")
# llama.cpp's numerics for a `bitnet` GGUF with TQ1_0/TQ2_0 weights (build 0c1e570, -fa off).
LLAMA_CPP = {"head": "f16", "activations": "block256", "ffn_act": "silu", "kv": "f16"}


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * np.asarray(weight, dtype=np.float64)


def quantize_activations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-token int8 absmax: (x_q as float64 integers [T, n], m / 127 per token [T, 1])."""
    x = np.asarray(x, dtype=np.float64)
    m = np.maximum(np.max(np.abs(x), axis=-1, keepdims=True), ACT_EPS)
    xq = np.clip(np.rint(x * (ACT_QMAX / m)), -128, 127)
    return xq, m / ACT_QMAX


def quantize_activations_q8k(x: np.ndarray) -> np.ndarray:
    """llama.cpp's q8_K quantisation per 256-block along the last axis (float32 arithmetic, as
    ``quantize_row_q8_K_ref``); returns the dequantised values q * d in float64 (exact products)."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[-1]
    if n % QK_K:
        raise ModelError(f"block activation quantisation needs a multiple of {QK_K} inputs, not {n}")
    xb = x.reshape(*x.shape[:-1], n // QK_K, QK_K)
    idx = np.argmax(np.abs(xb), axis=-1)[..., None]  # first largest |x|, as the C loop's strict `>`
    mx = np.take_along_axis(xb, idx, axis=-1)
    zero = mx == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = np.where(zero, np.float32(0), np.float32(-127.0) / np.where(zero, np.float32(1), mx))
        q = np.minimum(np.float32(127), np.rint(iscale.astype(np.float32) * xb))
        d = np.where(zero, np.float32(0), np.float32(1) / np.where(zero, np.float32(1), iscale))
    out = q.astype(np.float64) * d.astype(np.float32).astype(np.float64)
    return out.reshape(x.shape)


def rope(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """Rotate-half RoPE on x [T, heads, d] at integer `positions` [T]."""
    d = x.shape[-1]
    half = d // 2
    inv_freq = theta ** (-np.arange(half, dtype=np.float64) * 2.0 / d)
    ang = positions.astype(np.float64)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def glu(gate: np.ndarray, up: np.ndarray, act: str = "relu2") -> np.ndarray:
    """The gated FFN product: relu(gate)**2 * up (BitNet b1.58), or silu(gate) * up (llama.cpp)."""
    if act == "silu":
        with np.errstate(over="ignore"):  # exp(-gate) = inf for gate < -709: silu -> -0, as intended
            return gate / (1.0 + np.exp(-gate)) * up
    return np.maximum(gate, 0.0) ** 2 * up


def _f16(x: np.ndarray) -> np.ndarray:
    """Round to float16 (nearest even, as F16C) and back to float64."""
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)


class Reference:
    """Float64 forward pass with a KV cache; `forward` appends tokens, `generate` samples on top."""

    def __init__(
        self,
        model: BitNetModel,
        ctx: int | None = None,
        head: str = "f32",
        *,
        activations: str = "token",
        ffn_act: str = "relu2",
        kv: str = "f64",
    ) -> None:
        """``head="q8"`` computes the LM head as the compiled step does: int8 weights per row
        (``head.quantize_head_q8``) times the per-token int8 quantised hidden state; ``"f32"`` (the
        model as trained) uses the head in its file encoding. ``activations``, ``ffn_act``, ``kv`` and
        ``head="f16"`` emulate llama.cpp (see the module docstring and ``LLAMA_CPP``)."""
        for name, val, allowed in (
            ("head", head, HEADS),
            ("activations", activations, ACTIVATIONS),
            ("ffn_act", ffn_act, FFN_ACTS),
            ("kv", kv, KV_MODES),
        ):
            if val not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {val!r}")
        self.head = head
        self.activations = activations
        self.ffn_act = ffn_act
        self.kv = kv
        self._q8: tuple[np.ndarray, np.ndarray] | None = None
        self.model = model
        self.cfg = model.config
        self.ctx = ctx or self.cfg.max_ctx
        total = sum(m.rows * m.cols for m in model.ternary_matrices())
        self._dense: dict[int, np.ndarray] | None = {} if total <= CACHE_WEIGHTS else None
        self.reset()

    def reset(self) -> None:
        """Forget the KV cache (start a new sequence)."""
        c = self.cfg
        self.pos = 0
        self.k_cache = [np.zeros((self.ctx, c.kv_heads, c.head_dim)) for _ in range(c.layers)]
        self.v_cache = [np.zeros((self.ctx, c.kv_heads, c.head_dim)) for _ in range(c.layers)]

    def _int_matmul(self, w: TernaryMatrix, xq: np.ndarray) -> np.ndarray:
        if self._dense is None:
            return w.int_matmul(xq)
        dense = self._dense.get(id(w))
        if dense is None:
            dense = self._dense[id(w)] = w.ternary().astype(np.float64)
        return xq @ dense.T

    def bitlinear(self, x: np.ndarray, w: TernaryMatrix) -> np.ndarray:
        if self.activations == "block256":
            return self._int_matmul(w, quantize_activations_q8k(x)) * w.scale
        xq, s = quantize_activations(x)
        return self._int_matmul(w, xq) * s * w.scale

    def forward(self, ids: Sequence[int]) -> np.ndarray:
        """Run tokens `ids` at the next positions; returns logits [len(ids), vocab] in float64."""
        c = self.cfg
        n = len(ids)
        if n == 0:
            return np.zeros((0, c.vocab))
        if self.pos + n > self.ctx:
            raise ModelError(f"context of {self.ctx} tokens exceeded ({self.pos} + {n})")
        positions = np.arange(self.pos, self.pos + n)
        h = self.model.embedding.take(ids).astype(np.float64)
        rep = c.heads // c.kv_heads
        scale = 1.0 / np.sqrt(c.head_dim)
        end = self.pos + n
        mask = positions[:, None] >= np.arange(end)[None, :]  # [n, end]
        for li, layer in enumerate(self.model.layers):
            x = rms_norm(h, layer.attn_norm, c.rms_eps)
            q = self.bitlinear(x, layer.wq).reshape(n, c.heads, c.head_dim)
            k = self.bitlinear(x, layer.wk).reshape(n, c.kv_heads, c.head_dim)
            v = self.bitlinear(x, layer.wv).reshape(n, c.kv_heads, c.head_dim)
            q = rope(q, positions, c.rope_theta)
            k = rope(k, positions, c.rope_theta)
            if self.kv == "f16":
                q, k, v = (_f16(t) for t in (q, k, v))
            self.k_cache[li][self.pos : end] = k
            self.v_cache[li][self.pos : end] = v
            keys = np.repeat(self.k_cache[li][:end], rep, axis=1)  # [end, heads, d]
            vals = np.repeat(self.v_cache[li][:end], rep, axis=1)
            scores = np.einsum("thd,shd->hts", q, keys) * scale
            scores = np.where(mask[None], scores, -np.inf)
            scores -= scores.max(axis=-1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(axis=-1, keepdims=True)
            if self.kv == "f16":
                p = _f16(p)
            attn = np.einsum("hts,shd->thd", p, vals).reshape(n, c.q_dim)
            h = h + self.bitlinear(rms_norm(attn, layer.attn_sub_norm, c.rms_eps), layer.wo)
            x = rms_norm(h, layer.ffn_norm, c.rms_eps)
            g = glu(self.bitlinear(x, layer.w_gate), self.bitlinear(x, layer.w_up), self.ffn_act)
            h = h + self.bitlinear(rms_norm(g, layer.ffn_sub_norm, c.rms_eps), layer.w_down)
        self.pos = end
        return self.logits(rms_norm(h, self.model.output_norm, c.rms_eps))

    def logits(self, h: np.ndarray) -> np.ndarray:
        """LM head in row chunks, so a bf16/q8_0 table is never decoded whole."""
        head = self.model.lm_head
        if self.head == "q8":
            if self._q8 is None:
                from vtpu_cli.models.head import quantize_head_q8

                self._q8 = quantize_head_q8(head)
            w8, ws = self._q8
            xq, s = quantize_activations(h)
            out = np.empty((h.shape[0], head.rows))
            for r0 in range(0, head.rows, HEAD_CHUNK_ROWS):
                r1 = min(head.rows, r0 + HEAD_CHUNK_ROWS)
                out[:, r0:r1] = (xq @ w8[r0:r1].astype(np.float64).T) * ws[r0:r1].astype(np.float64) * s
            return out
        if self.head == "f16":
            h = _f16(h)
        out = np.empty((h.shape[0], head.rows))
        for r0 in range(0, head.rows, HEAD_CHUNK_ROWS):
            r1 = min(head.rows, r0 + HEAD_CHUNK_ROWS)
            out[:, r0:r1] = h @ head.row_range(r0, r1).astype(np.float64).T
        return out

    def generate(
        self,
        prompt_ids: Sequence[int],
        n: int,
        sampler: Sampler | None = None,
        *,
        stop_at_eos: bool = False,
    ) -> list[int]:
        """Reset, prefill `prompt_ids`, then sample up to `n` tokens (greedy by default).

        Stops early at the context limit, or at EOS when `stop_at_eos`; a prompt that does not fit the
        context raises ModelError.
        """
        if not prompt_ids:
            raise ModelError("empty prompt: at least one token (e.g. BOS) is needed")
        if len(prompt_ids) > self.ctx:
            raise ModelError(f"prompt of {len(prompt_ids)} tokens is longer than the context of {self.ctx}")
        sampler = sampler or Sampler()
        self.reset()
        logits = self.forward(list(prompt_ids))[-1]
        out: list[int] = []
        eos = set(self.cfg.eos_ids)
        for _ in range(n):
            tok = sampler(logits)
            out.append(tok)
            if (stop_at_eos and tok in eos) or self.pos >= self.ctx:
                break
            logits = self.forward([tok])[-1]
        return out


def generate(
    model: BitNetModel, prompt_ids: Sequence[int], n: int, sampler: Sampler | None = None
) -> list[int]:
    """Convenience: a fresh Reference over `model`, then `Reference.generate`."""
    return Reference(model).generate(prompt_ids, n, sampler)
