"""`Backend` over the models package: its loader, tokenizer and float64 numpy reference forward pass.

`forward` is `models.Reference.forward` applied to a batch: the new token rows of all sequences (prompt
chunks and single decode tokens alike) go through every ternary projection together, so the weights are
unpacked and streamed once per pass rather than once per sequence, while attention runs per sequence
over its own KV cache. The ternary products are exact integers and the norms are row-wise, so batching
changes at most the BLAS rounding of attention and the LM head (the last bits of the logits); the tests
check that greedy answers are token-identical to `Reference.generate` run alone.

The compiled (JIT) model path will implement the same `Backend` protocol and replace this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtpu_cli.models import Reference, load_model
from vtpu_cli.models.reference import rms_norm, rope
from vtpu_cli.models.weights import BitNetModel
from vtpu_cli.serve.backend import render_simple_chat, render_template

FIRST_CAPACITY = 64  # KV positions allocated at first; caches double as a sequence grows, up to ctx


@dataclass(eq=False)
class SeqState:
    """One sequence's KV cache: per layer [capacity, kv_heads, head_dim] float64, `pos` positions used."""

    k: list[np.ndarray]
    v: list[np.ndarray]
    pos: int = 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.k) + sum(a.nbytes for a in self.v)


class ReferenceBackend:
    """Serve a BitNet checkpoint (HF directory or GGUF file) through the numpy reference."""

    def __init__(self, model: BitNetModel, *, ctx: int | None = None, model_id: str | None = None) -> None:
        if model.tokenizer is None:
            raise ValueError(f"{model.source}: the model has no tokenizer; the server needs one")
        self.model = model
        self.cfg = model.config
        self.ctx = ctx or self.cfg.max_ctx
        if not 1 < self.ctx <= self.cfg.max_ctx:
            raise ValueError(
                f"context {self.ctx} must be between 2 and the model's {self.cfg.max_ctx} positions"
            )
        self.ref = Reference(model, ctx=self.ctx)
        self.tok = model.tokenizer
        self.model_id = model_id or _default_id(Path(model.source))
        eos = set(self.cfg.eos_ids)
        if self.tok.eos_id is not None:
            eos.add(self.tok.eos_id)
        self.eos_ids = frozenset(eos)
        self.vocab_size = self.cfg.vocab
        self.ref.k_cache = self.ref.v_cache = []  # its single-sequence cache is unused: states hold KV

    @classmethod
    def load(cls, path: str | Path, *, ctx: int | None = None) -> ReferenceBackend:
        """Load a checkpoint (raises models.ModelError on bad input)."""
        return cls(load_model(path), ctx=ctx)

    # ---------------------------------------------------------------- text

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text)

    def encode_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        template = self.tok.chat_template
        if not template:
            return self.tok.encode(render_simple_chat(messages))

        def name(i: int | None) -> str:
            return (self.tok.token(i) or "") if i is not None else ""

        text = render_template(
            template, messages, bos_token=name(self.tok.bos_id), eos_token=name(self.tok.eos_id)
        )
        # Templates write BOS themselves (as transformers' apply_chat_template assumes).
        return self.tok.encode(text, add_bos=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(ids)

    def token_bytes(self, token: int) -> bytes:
        return self.tok.token_bytes(token)

    # ---------------------------------------------------------------- KV states

    def new_state(self) -> SeqState:
        c = self.cfg
        cap = min(FIRST_CAPACITY, self.ctx)
        return SeqState(
            [np.zeros((cap, c.kv_heads, c.head_dim)) for _ in range(c.layers)],
            [np.zeros((cap, c.kv_heads, c.head_dim)) for _ in range(c.layers)],
        )

    def release(self, state: SeqState) -> None:
        state.k.clear()
        state.v.clear()

    def state_bytes(self) -> int:
        c = self.cfg
        return 2 * c.layers * self.ctx * c.kv_heads * c.head_dim * 8

    def _reserve(self, s: SeqState, end: int) -> None:
        cap = s.k[0].shape[0]
        if end <= cap:
            return
        while cap < end:
            cap = min(2 * cap, self.ctx)
        for arrays in (s.k, s.v):
            for i, a in enumerate(arrays):
                grown = np.zeros((cap, *a.shape[1:]))
                grown[: s.pos] = a[: s.pos]
                arrays[i] = grown

    # ---------------------------------------------------------------- compute

    def forward(self, states: Sequence[SeqState], tokens: Sequence[Sequence[int]]) -> np.ndarray:
        return self._run(states, tokens, all_rows=False)

    def score(self, state: SeqState, tokens: Sequence[int]) -> np.ndarray:
        return self._run([state], [tokens], all_rows=True)

    def _run(self, states: Sequence[SeqState], tokens: Sequence[Sequence[int]], all_rows: bool) -> np.ndarray:
        c = self.cfg
        ref = self.ref
        lens = [len(t) for t in tokens]
        offs = np.concatenate([[0], np.cumsum(lens)]).astype(int)
        for s, n in zip(states, lens, strict=True):
            self._reserve(s, s.pos + n)
        positions = np.concatenate([np.arange(s.pos, s.pos + n) for s, n in zip(states, lens, strict=True)])
        rows = int(offs[-1])
        rep = c.heads // c.kv_heads
        scale = 1.0 / np.sqrt(c.head_dim)
        h = self.model.embedding.take([t for ts in tokens for t in ts]).astype(np.float64)
        attn = np.empty((rows, c.q_dim))
        for li, layer in enumerate(self.model.layers):
            x = rms_norm(h, layer.attn_norm, c.rms_eps)
            q = rope(ref.bitlinear(x, layer.wq).reshape(rows, c.heads, c.head_dim), positions, c.rope_theta)
            k = rope(
                ref.bitlinear(x, layer.wk).reshape(rows, c.kv_heads, c.head_dim), positions, c.rope_theta
            )
            v = ref.bitlinear(x, layer.wv).reshape(rows, c.kv_heads, c.head_dim)
            for i, s in enumerate(states):  # attention: per sequence, over its own cache
                a, b = offs[i], offs[i + 1]
                end = s.pos + (b - a)
                s.k[li][s.pos : end] = k[a:b]
                s.v[li][s.pos : end] = v[a:b]
                keys = np.repeat(s.k[li][:end], rep, axis=1)  # [end, heads, d]
                vals = np.repeat(s.v[li][:end], rep, axis=1)
                scores = np.einsum("thd,shd->hts", q[a:b], keys) * scale
                if b - a > 1:  # causal within the new chunk
                    mask = positions[a:b, None] >= np.arange(end)[None, :]
                    scores = np.where(mask[None], scores, -np.inf)
                scores -= scores.max(axis=-1, keepdims=True)
                p = np.exp(scores)
                p /= p.sum(axis=-1, keepdims=True)
                attn[a:b] = np.einsum("hts,shd->thd", p, vals).reshape(b - a, c.q_dim)
            h = h + ref.bitlinear(rms_norm(attn, layer.attn_sub_norm, c.rms_eps), layer.wo)
            x = rms_norm(h, layer.ffn_norm, c.rms_eps)
            gate = np.maximum(ref.bitlinear(x, layer.w_gate), 0.0)
            g = gate * gate * ref.bitlinear(x, layer.w_up)
            h = h + ref.bitlinear(rms_norm(g, layer.ffn_sub_norm, c.rms_eps), layer.w_down)
        for s, n in zip(states, lens, strict=True):
            s.pos += n
        # the LM head only for the rows whose next token is wanted (every row when scoring)
        last = np.arange(rows) if all_rows else offs[1:] - 1
        return ref.logits(rms_norm(h[last], self.model.output_norm, c.rms_eps))


def _default_id(path: Path) -> str:
    """The model's name for clients: the file's stem, or the directory's name."""
    return path.stem if path.suffix.lower() == ".gguf" else path.name
