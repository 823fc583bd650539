"""`Backend` over the compiled model: each sequence runs the phextcc-compiled BitNet step on the engines.

A sequence's state is a :class:`~vtpu_cli.models.compiled.CompiledModel` (its own KV-cache scrolls; the
weight scrolls, the compiled program and the JIT's native code are shared by all of them). States are
pooled: a released one is reset and handed to the next request, so only the first request per slot
pays for building it. ``forward`` runs the sequences of a pass one after another (the compiled step
decodes one token of one sequence per run), which keeps every answer identical to the same request run
alone. Text handling is the reference backend's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vtpu_cli.models import load_model
from vtpu_cli.models.weights import BitNetModel
from vtpu_cli.serve.refbackend import ReferenceBackend


class CompiledBackend(ReferenceBackend):
    """Serve a BitNet checkpoint through the compiled decoder step (``engine`` "jit" or "interp")."""

    def __init__(
        self,
        model: BitNetModel,
        *,
        ctx: int | None = None,
        model_id: str | None = None,
        engine: str = "jit",
        sentrons: int = 1,
    ) -> None:
        from vtpu_cli.models.cache import cached_weights

        super().__init__(model, ctx=ctx, model_id=model_id)
        self.engine = engine
        self.sentrons = sentrons  # tensor parallel: each step's matmuls split over this many sentrons
        self.weights, _ = cached_weights(model)
        self._free: list = []
        self._free.append(self._build())  # compile (or load the cached native code) before serving

    @classmethod
    def load(
        cls, path: str | Path, *, ctx: int | None = None, engine: str = "jit", sentrons: int = 1
    ) -> CompiledBackend:
        return cls(load_model(path, lazy=True), ctx=ctx, engine=engine, sentrons=sentrons)

    def _build(self):
        from vtpu_cli.models.compiled import CompiledModel

        # tiered JIT (docs/jit.md, "Tiers"): a cold server is ready on tier-0 code, and each step
        # variant switches to the optimised code between requests once the background compile lands
        # (started at once, or -- few spare cores -- when a request ends: ``release``)
        return CompiledModel(
            self.model,
            ctx=self.ctx,
            engine=self.engine,
            weights=self.weights,
            sentrons=self.sentrons,
            tiered=True,
        )

    def new_state(self):
        cm = self._free.pop() if self._free else self._build()
        cm.reset()
        return cm

    def release(self, state) -> None:
        state.reset()
        # a tier-1 compile the engines left for later (few spare cores: engines.jit.engine.background_now)
        # starts between requests rather than beside one
        state.start_optimised()
        self._free.append(state)

    def state_bytes(self) -> int:
        c = self.cfg
        return 2 * c.layers * self.ctx * c.kv_dim * 4

    def score(self, state, tokens: Sequence[int]) -> np.ndarray:
        # the scoring variants: T-token chunks whose head covers every row (CompiledModel.score)
        return np.concatenate([rows.astype(np.float64) for rows in state.score([int(t) for t in tokens])])

    def forward(self, states: Sequence, tokens: Sequence[Sequence[int]]) -> np.ndarray:
        return np.stack(
            [
                cm.forward([int(t) for t in ts])[-1].astype(np.float64)
                for cm, ts in zip(states, tokens, strict=True)
            ]
        )
