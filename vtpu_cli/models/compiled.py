"""BitNet b1.58 executed through the toolchain: ``phx/bitnet.phx`` compiled by phextcc, run by an engine.

One decoder step over T tokens (all layers, RoPE, attention over the KV cache, LM head, argmax) is a
single ``.phx`` program. It is compiled once per shape (T, context, logit rows) and kept, and every
tensor lives in a scroll whose coordinate is computed from (role, layer): role R has the base
coordinate ``4.1.1/1.1.R/1.1.1`` and layer l is that coordinate with the scroll part + l (the
compiler's ``layers L`` stacks), so the layer loop inside the program reaches its weights by
coordinate arithmetic. Weight scrolls are the converted-layout buffers themselves (memory-mapped from
the layout cache when one is used): they are shared by every program variant and never copied.

What runs on the host (numpy), and why -- everything else is compiled code:

* the embedding row lookup (the table stays in its file encoding, f16/bf16/q8_0, which the compiler
  has no dtype for), copied into the ``x`` input scroll;
* the RoPE cos/sin tables (computed once per model, like a weight: inputs, not per-token glue);
* sampling with temperature/top-k/top-p on the logits the program writes (greedy uses the program's
  own ``argmax``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np

from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.head import quantize_head_q8

if TYPE_CHECKING:
    from vtpu_cli.binary.program import Program
    from vtpu_cli.machine.memory import Memory
    from vtpu_cli.models.ternary import TernaryMatrix
    from vtpu_cli.models.weights import BitNetModel

# role -> (phx tensor name, base coordinate). Ternary roles first, in the order of the scale table.
TERNARY_ROLES = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
PHX_TERNARY = {"wq": "wq", "wk": "wk", "wv": "wv", "wo": "wo", "w_gate": "wg", "w_up": "wu", "w_down": "wd"}
NORM_ROLES = {
    "attn_norm": "attn_norm",
    "attn_sub_norm": "attn_sub",
    "ffn_norm": "ffn_norm",
    "ffn_sub_norm": "ffn_sub",
}
ROLE_INDEX = {
    "wq": 1,
    "wk": 2,
    "wv": 3,
    "wo": 4,
    "wg": 5,
    "wu": 6,
    "wd": 7,
    "attn_norm": 8,
    "attn_sub": 9,
    "ffn_norm": 10,
    "ffn_sub": 11,
    "onorm": 12,
    "head": 13,
    "hsc": 14,
}
IO_INDEX = {"x": 1, "pos": 2, "cs": 3, "wsc": 4}
# the KV cache: keys then values in one scroll (phx/bitnet.phx); shelf 2 (the value cache once) is unused
OUT_INDEX = {"kv": 1, "hout": 3, "logits": 4, "tok": 5}
SCALES_PER_LAYER = 8  # q k v o gate up down + one pad slot: 32 bytes per layer


def weight_coord(role: str, layer: int = 0) -> str:
    """The coordinate of layer ``layer`` of a weight role: the coordinate is the route."""
    return f"4.1.1/1.1.{ROLE_INDEX[role]}/1.1.{1 + layer}"


def io_coord(name: str) -> str:
    if name in OUT_INDEX:
        return f"3.1.1/1.1.1/1.1.{OUT_INDEX[name]}"
    return f"1.1.1/1.1.1/1.1.{IO_INDEX[name]}"


def phx_source() -> str:
    """The shipped decoder-step program (without its shape header)."""
    return resources.files("vtpu_cli.models").joinpath("phx/bitnet.phx").read_text(encoding="utf-8")


@dataclass(frozen=True)
class StepShape:
    """Everything a compiled step depends on besides the weights' values."""

    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    layers: int
    vocab: int
    ctx: int
    eps: float
    tokens: int = 1  # T: tokens per run (1: the decode step; more: a batched prefill chunk)
    sentrons: int = 1  # tensor parallel: every projection and the head split by columns (shard=cols)
    all_logits: bool = False  # a scoring variant: the head for all T rows (perplexity), no argmax

    def header(self) -> str:
        """``const`` and ``coord`` declarations that instantiate the shipped program for this shape
        (appended after it, so diagnostics keep the shipped file's line numbers)."""
        c = {
            "T": self.tokens,
            "D": self.hidden,
            "DV": self.hidden // 16,
            "F": self.ffn,
            "QD": self.heads * self.head_dim,
            "KVD": self.kv_heads * self.head_dim,
            "H": self.heads,
            "KVH": self.kv_heads,
            "HD": self.head_dim,
            "L": self.layers,
            "LR": self.tokens if self.all_logits else 1,
            "LS": max(self.layers, 2),
            "CTX": self.ctx,
            "LCTX": self.layers * self.ctx,
            "KVR": 2 * self.layers * self.ctx,
            "LW": self.layers * SCALES_PER_LAYER,
            "V": self.vocab,
        }
        lines = ["", "# ---- shape header (vtpu_cli/models/compiled.py)"]
        lines += [f"const {k} = {v}" for k, v in c.items()]
        lines.append(f"const EPS = {_float_literal(self.eps)}")
        for role in ROLE_INDEX:
            lines.append(f"coord C_{role.upper()} = {weight_coord(role)}")
        for name in (*IO_INDEX, *OUT_INDEX):
            lines.append(f"coord C_{name.upper()} = {io_coord(name)}")
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        return phx_source() + self.header()


def _float_literal(x: float) -> str:
    """A .phx float literal (digits '.' digits, optional exponent)."""
    m, e = f"{x:.9e}".split("e")
    return f"{m}e{int(e)}"


def check_supported(model: BitNetModel) -> None:
    """Shapes the compiled step handles (vector-granular heads and rows); else a ModelError."""
    c = model.config
    if c.head_dim % 32:
        raise ModelError(f"{model.source}: head size {c.head_dim} is not a multiple of 32 (compiled RoPE)")
    if c.hidden % 16 or c.ffn % 16:
        raise ModelError(f"{model.source}: hidden {c.hidden} and ffn {c.ffn} must be multiples of 16")


# The weight tile layout of the step program (part of the converted-layout cache key, models/cache.py):
# 2 = interleaved t2 tiles read by DTDOT (docs/phx.md); 1 = the DTERNARY quarter tiles.
TILE_LAYOUT_VERSION = 2


def tile_layout(m: TernaryMatrix) -> np.ndarray:
    """vtpu layout [out, in/4] -> phextcc's interleaved t2 tile layout of the [in, out] operand, as uint8.

    The vtpu layout already puts the codes of 4 consecutive inputs in one byte, least significant
    first; rows padded to 16 (code 1, weight 0 in every field) are interleaved 16 inputs at a time by
    ``interleave_t2_rows`` (docs/phx.md "Ternary matmul"), in row chunks to bound the temporaries."""
    from vtpu_cli.compiler.tensors import interleave_t2_rows

    rows, cols = m.rows, m.cols
    k16 = (cols + 15) // 16 * 16
    n16 = (rows + 15) // 16 * 16
    packed = np.asarray(m.packed, np.uint8)
    if packed.shape != (n16, k16 // 4):
        full = np.full((n16, k16 // 4), 0x55, np.uint8)  # code 1 (weight 0) in every field
        full[:rows, : packed.shape[1]] = packed
        packed = full
    out = np.empty(n16 * k16 // 4, np.uint8)
    step = max(16, (1 << 22) // max(k16 // 4, 1) // 16 * 16)  # ~4 MiB of packed rows per step
    for r0 in range(0, n16, step):
        r1 = min(n16, r0 + step)
        out[r0 * k16 // 4 : r1 * k16 // 4] = interleave_t2_rows(packed[r0:r1])
    return out


def rope_tables(ctx: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    half = head_dim // 2
    inv = theta ** (-np.arange(half, dtype=np.float64) * 2.0 / head_dim)
    ang = np.arange(ctx, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def _u8(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint8).reshape(-1)


def convert_weights(model: BitNetModel) -> dict[str, np.ndarray]:
    """Every weight scroll of the step program as uint8 bytes, keyed by coordinate text."""
    out: dict[str, np.ndarray] = {}
    scales = np.zeros(model.config.layers * SCALES_PER_LAYER, np.float32)
    for li, layer in enumerate(model.layers):
        for j, role in enumerate(TERNARY_ROLES):
            m = getattr(layer, role)
            out[weight_coord(PHX_TERNARY[role], li)] = tile_layout(m)
            scales[li * SCALES_PER_LAYER + j] = m.scale
        for role, name in NORM_ROLES.items():
            out[weight_coord(name, li)] = _u8(np.asarray(getattr(layer, role), np.float32))
    out[weight_coord("onorm")] = _u8(np.asarray(model.output_norm, np.float32))
    w8, ws = quantize_head_q8(model.lm_head)
    out[weight_coord("head")] = _u8(w8)
    out[weight_coord("hsc")] = _u8(ws)
    out[io_coord("wsc")] = _u8(scales)
    return out


_PROGRAMS: dict[StepShape, tuple[Program, dict]] = {}


def compile_step(shape: StepShape, opt: int = 2) -> tuple[Program, dict]:
    """The step program for ``shape`` (compiled once per process and shape). Every tensor op is
    lowered to its loop form whatever its size: same numerics, a program ~2.5x smaller for small
    models, and the JIT's native code generation time grows steeply with program size (measured on
    the test model: 4888 SIWs unrolled took 9-15 minutes to generate, see docs/models.md)."""
    from vtpu_cli.compiler.cache import compile_cached

    hit = _PROGRAMS.get(shape)
    if hit is None:  # (the next process reads it back from the compile cache: ~8 ms, not ~20-75)
        hit = _PROGRAMS[shape] = compile_cached(
            shape.text(), "bitnet.phx", opt=opt, force_loops=True, sentrons=shape.sentrons
        )
    return hit


class StepRunner:
    """The compiled step with its memory: weight and KV-cache scrolls are the shared buffers (added by
    reference, never copied), the rest (IO, scratch) belongs to this runner."""

    def __init__(self, shape: StepShape, shared: dict[int, np.ndarray], engine: str, tiered: bool = False):
        from vtpu_cli.core import coords
        from vtpu_cli.engines.select import EngineOptions
        from vtpu_cli.machine.memory import Memory, scroll_buffer

        self.shape = shape
        self.program, self.report = compile_step(shape)
        self.engine_name = engine
        self.tiered = tiered  # JIT: tier-0 code at once, the optimised code from a background compile
        self.mem: Memory = Memory(mem_limit=1 << 46)
        for d in self.program.data:
            buf = shared.get(d.coord)
            if buf is None:
                buf = scroll_buffer(d.size, None if d.zero else d.data)
            elif buf.shape[0] != d.size:
                raise ModelError(
                    f"scroll {coords.format_packed(d.coord)}: {buf.shape[0]} bytes for a {d.size}-byte tensor"
                )
            self.mem.add(d.coord, buf, dtype=d.dtype, shape=d.shape)
        names = self.program.coord_names
        self.bufs = {n: self.mem.table[names[n]].buf for n in ("x", "pos", "hout", "logits", "tok")}
        self.preloaded = set(self.mem.table)
        self.opts = EngineOptions(engine=engine, sentrons=shape.sentrons, max_steps=None, rerunnable=True)
        self._engine = None
        self.fallback: str | None = None  # why the interpreter runs this step although the JIT was asked for
        self.last = None
        self.runs = 0
        self.run_s = 0.0
        self.fast_hits = 0  # PPT translations the JIT served from its fast path, all runs
        self.tier0_runs = 0  # runs that executed tier-0 code (tiered JIT, before the optimised code landed)

    def engine(self):
        """The engine for the next run. The JIT is opened (native code generated or loaded from its disk
        cache) once and kept; the interpreter is opened afresh per run."""
        from vtpu_cli.engines.base import world_size_from_env
        from vtpu_cli.engines.select import open_engine

        if self._engine is not None:
            return self._engine
        if self.opts.sentrons > 1 and world_size_from_env() > 1:
            # under mpiexec the sentrons spread over the ranks (docs/cluster.md, "SPMD engine"): importing
            # the cluster layer registers its rank engine with open_engine
            import vtpu_cli.cluster.spmd  # noqa: F401
        if self.tiered and self.opts.engine == "jit":
            from vtpu_cli.engines.jit.engine import tiered_engines

            with tiered_engines():
                eng = open_engine(self.program, self.mem, self.opts)
        else:
            eng = open_engine(self.program, self.mem, self.opts)
        if self.engine_name == "jit" and self.fallback is None:
            reason = getattr(eng, "reason", None)
            if reason is None:
                self._engine = eng  # the JIT keeps its native code between runs
            else:
                # the JIT cannot run this step (e.g. its compile ran over the limit): later runs open the
                # interpreter at once instead of attempting the native compile again on every token
                self.fallback = reason
                self.opts = replace(self.opts, engine="interp")
        return eng

    def start_optimised(self, wait_sent: float = 0.0) -> None:
        """Start this step's tier-1 compile if its engine left it for later (``JitEngine.start_optimised``)."""
        eng = self._engine
        if hasattr(eng, "start_optimised"):
            eng.start_optimised(wait_sent)

    def wait_optimised(self, timeout: float | None = None) -> bool:
        """Block until this step runs optimised code (see ``JitEngine.wait_optimised``)."""
        eng = self._engine
        return eng.wait_optimised(timeout) if hasattr(eng, "wait_optimised") else True

    def jit_cached(self) -> bool:
        """Whether the JIT's optimised code for this step is in its disk cache (then loaded, and its
        engine takes it from memory): starting it compiles nothing."""
        from vtpu_cli.engines.jit.compile import compile_program

        try:
            got = compile_program(
                self.program,
                sentrons=self.shape.sentrons,
                ppt_sets=self.mem.sets,
                ppt_ways=self.mem.ways,
                cached_only=True,
            )
        except Exception:  # noqa: BLE001 - only a hint: the engine's own compile reports any error
            return False
        return got is not None

    def start(self) -> None:
        """Start the engine now (JIT code generation) rather than in the first run, so that timings of
        the first token exclude it."""
        if self.engine_name == "jit":
            self.engine()

    def run(self, x: np.ndarray, pos: int, head_row: int | None = None, head: bool = True) -> None:
        """T tokens: ``x`` their embedding rows [T, hidden], row 0 at position ``pos``. ``head_row`` (default
        the last) is the row whose hidden state, logits and argmax the run writes; ``head=False`` skips
        the LM head (a prompt chunk whose logits nobody reads)."""
        t = self.shape.tokens
        self.bufs["x"][:] = _u8(np.asarray(x, np.float32).reshape(t * self.shape.hidden))
        row = t - 1 if head_row is None else head_row
        self.bufs["pos"][:] = _u8(np.array([pos, self.shape.layers, row, int(head)], np.int32))
        for c in [c for c in self.mem.table if c not in self.preloaded]:
            self.mem.free(c)  # scrolls the last run SALLOC'd (the spill scroll): each run starts afresh
        if self.shape.sentrons > 1:
            # each run is a fresh happens-before history: the interpreter's race records live on the
            # scrolls (the KV cache's last writer is sentron 0 of the previous run, whose clock is gone)
            for sc in self.mem.table.values():
                sc.writer, sc.write_epoch = -1, -1
                sc.__dict__.pop("_reads", None)
        res = self.engine().run()
        if res.status != "ok":
            raise ModelError(f"the compiled step failed: {res.fault.render() if res.fault else res.status}")
        self.last = res
        self.runs += 1
        self.run_s += getattr(res, "run_s", 0.0) or 0.0
        self.fast_hits += getattr(res, "ppt_fast_hits", 0) or 0
        if getattr(res, "tier", 1) == 0:
            self.tier0_runs += 1

    def logits(self) -> np.ndarray:
        """The last run's logits: [vocab] (one row), or [T, vocab] for a scoring variant."""
        lg = self.bufs["logits"].view(np.float32)
        return lg.reshape(self.shape.tokens, -1) if self.shape.all_logits else lg

    def token(self) -> int:
        return int(self.bufs["tok"].view(np.int32)[0])


class CompiledModel:
    """A loaded model run through the toolchain, with a KV cache. Same shape of interface as
    ``Reference``: ``forward(ids)`` appends tokens and returns logits.

    Compiled variants share the weights and the KV-cache scrolls: the decode step (T = 1) and, each
    made on first use, prefill steps of T = ``prefill`` tokens per run (default 64 and 16). A prompt
    runs as full T-token chunks; a remainder of at least T/2 is one more chunk padded with copies of its
    last token when it fits in the context (padding rows sit after every real row, so the causal
    attention of the real rows never sees them, and decode overwrites their cache rows before reading
    them); smaller remainders try the next size, then go token by token (:meth:`plan`). Only the
    prompt's last token runs the LM head."""

    def __init__(
        self,
        model: BitNetModel,
        ctx: int | None = None,
        engine: str = "jit",
        weights: dict[str, np.ndarray] | None = None,
        prefill: int | tuple[int, ...] = (64, 16),
        sentrons: int = 1,
        tiered: bool = False,
    ) -> None:
        """``tiered=True``: each JIT step variant whose optimised code is not cached starts on tier-0
        code (ready in a fraction of the full compile) and switches to the optimised code between two
        runs once a background compile delivers it (``vtpu generate``); benchmarks leave it off."""
        from vtpu_cli.core import coords
        from vtpu_cli.machine.memory import scroll_buffer
        from vtpu_cli.models.weights import no_huge_pages

        check_supported(model)
        if sentrons < 1:
            raise ModelError(f"--sentrons must be at least 1, got {sentrons}")
        self.sentrons = sentrons
        self.tiered = tiered
        sizes = (prefill,) if isinstance(prefill, int) else tuple(prefill)
        if not sizes or min(sizes) < 1:
            raise ModelError(f"prefill chunk must be at least 1 token, got {prefill}")
        self.model = model
        self.cfg = c = model.config
        self.ctx = min(ctx or c.max_ctx, c.max_ctx)
        self.engine = engine
        # prefill chunk sizes T > 1, largest first (one compiled variant each, made on first use)
        self.prefill_sizes = tuple(sorted({min(t, self.ctx) for t in sizes if t > 1}, reverse=True))
        self.prefill_tokens = self.prefill_sizes[0] if self.prefill_sizes else 1
        conv = weights if weights is not None else convert_weights(model)
        shared = {coords.parse_packed(k): v for k, v in conv.items()}
        cos, sin = rope_tables(self.ctx, c.head_dim, c.rope_theta)
        shared[coords.parse_packed(io_coord("cs"))] = _u8(np.concatenate([cos, sin], axis=1))
        kv_bytes = c.layers * self.ctx * c.kv_dim * 4
        self.kv = scroll_buffer(2 * kv_bytes)  # keys, then values (one scroll: see phx/bitnet.phx)
        self.kc, self.vc = self.kv[:kv_bytes], self.kv[kv_bytes:]
        no_huge_pages(self.kv)  # resident as rows are written, not 2 MiB at a time (every caller: serve too)
        shared[coords.parse_packed(io_coord("kv"))] = self.kv
        self.shared = shared
        self.runners: dict[int, StepRunner] = {1: StepRunner(self.shape(1), shared, engine, tiered)}
        self.scorers: dict[int, StepRunner] = {}  # T -> the variant writing all T rows' logits (score)
        self.runner = self.runners[1]  # the runner of the last run: its logits and argmax are current
        self.pos = 0
        self.engines_used: set[str] = set()

    def shape(self, tokens: int = 1) -> StepShape:
        c = self.cfg
        return StepShape(
            c.hidden,
            c.ffn,
            c.heads,
            c.kv_heads,
            c.head_dim,
            c.layers,
            c.vocab,
            self.ctx,
            float(np.float32(c.rms_eps)),
            tokens,
            self.sentrons,
        )

    def runner_for(self, tokens: int) -> StepRunner:
        """The compiled variant that takes ``tokens`` tokens per run (compiled on first use)."""
        r = self.runners.get(tokens)
        if r is None:
            r = self.runners[tokens] = StepRunner(self.shape(tokens), self.shared, self.engine, self.tiered)
        return r

    def scorer_for(self, tokens: int) -> StepRunner:
        """The scoring variant of ``tokens`` tokens per run: a prefill chunk that writes the logits of
        every row (compiled on first use; it shares the weights and the KV cache)."""
        r = self.scorers.get(tokens)
        if r is None:
            shape = replace(self.shape(tokens), all_logits=True)
            r = self.scorers[tokens] = StepRunner(shape, self.shared, self.engine, self.tiered)
        return r

    def start(self, sizes=None, scoring=()) -> None:
        """Start the engines now (JIT code generation or its cache): the decode step, the prefill
        variants of ``sizes`` (default all; ``plan_sizes`` gives those a prompt uses) and the scoring
        variants of ``scoring`` (what :meth:`score` runs)."""
        wanted = [t for t in (self.prefill_sizes if sizes is None else sizes) if t > 1]
        scored = [t for t in scoring if t > 1]
        spare = self.engine == "jit" and (wanted or scored) and not self.runners[1].jit_cached()
        if spare:
            from vtpu_cli.engines.jit.compile import prestart_child

            prestart_child()  # one variant's compile will run in a child: it starts while phextcc runs
        try:
            self._start_all([*(self.runner_for(t) for t in wanted), *(self.scorer_for(t) for t in scored)])
        finally:
            if spare:
                from vtpu_cli.engines.jit.compile import drop_spare

                drop_spare()  # not taken (small variants compile in this process): it would idle on

    def _start_all(self, variants: list[StepRunner]) -> None:
        runners = [self.runners[1], *variants]
        if self.engine != "jit" or len(runners) == 1:
            for r in runners:
                r.start()
            return
        # the variants' native compiles run in child processes: started together, they use every core;
        # the largest compiles in this process, the others in children (its prefill twins, as long and
        # differing only in immediates, share its object: whichever of them comes first compiles here)
        import threading

        from vtpu_cli.engines.jit.compile import tier0_placement

        errors: list[BaseException] = []
        most = max(len(r.program.code) for r in runners)

        def start(r: StepRunner) -> None:
            try:
                with tier0_placement(here=len(r.program.code) == most):
                    r.start()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(e)

        threads = [threading.Thread(target=start, args=(r,), daemon=True) for r in runners]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise errors[0]

    def start_optimised(self, wait_sent: float = 0.0) -> None:
        """Start the tier-1 compiles the engines left for later (``engines.jit.engine.background_now``:
        on a host with few spare cores they would slow the runs beside them more than they gain);
        ``wait_sent``: wait up to that many seconds per variant until its detached compile holds its
        job, so that this process may exit and the next start still finds the optimised code cached."""
        for r in self.variants():
            if r._engine is not None:
                r.start_optimised(wait_sent)

    def wait_optimised(self, timeout: float | None = None) -> bool:
        """Block until every started variant runs optimised code; True when all do."""
        return all([r.wait_optimised(timeout) for r in self.variants() if r._engine is not None])

    def variants(self) -> list[StepRunner]:
        """Every compiled variant made so far: decode, prefill and scoring steps."""
        return [*self.runners.values(), *self.scorers.values()]

    def reset(self) -> None:
        """Start a new sequence (cache rows beyond ``pos`` are never read, so nothing is cleared)."""
        self.pos = 0

    def _run(self, runner: StepRunner, ids: list[int], n_real: int, head: bool) -> StepRunner:
        runner.run(self.model.embedding.take(ids), self.pos, head_row=n_real - 1, head=head)
        if runner.last is not None:
            self.engines_used.add(runner.last.engine)
        self.runner = runner
        self.pos += n_real
        return runner

    def step(self, token: int, head: bool = True) -> StepRunner:
        """Run one token at the next position; the runner then holds its logits and argmax."""
        if self.pos >= self.ctx:
            raise ModelError(f"context of {self.ctx} tokens exceeded")
        return self._run(self.runners[1], [int(token)], 1, head)

    def plan(self, n: int, pos: int | None = None) -> list[tuple[int, int]]:
        """How ``n`` tokens appended at ``pos`` (default: the current position) are run: a list of
        (real tokens, T) per run. At each point the largest chunk size T that fits the context is
        used for a full chunk; a remainder of at least T/2 tokens is one chunk padded to T; otherwise
        the next smaller size is tried, and what is left runs token by token (T = 1). A padded chunk
        computes T rows, so it only pays off for a large remainder."""
        pos = self.pos if pos is None else pos
        runs: list[tuple[int, int]] = []
        i = 0
        while i < n:
            left, p = n - i, pos + i
            run = (1, 1)
            for t in self.prefill_sizes:
                if p + t > self.ctx:
                    continue
                if left >= t:
                    run = (t, t)
                    break
                if left >= max(2, (t + 1) // 2):
                    run = (left, t)
                    break
            runs.append(run)
            i += run[0]
        return runs

    def plan_sizes(self, n: int, pos: int | None = None) -> set[int]:
        """The chunk sizes ``plan(n, pos)`` uses (1 for token-by-token runs)."""
        return {t for _, t in self.plan(n, pos)}

    def prefill(self, ids: list[int]) -> StepRunner:
        """Append ``ids`` as :meth:`plan` says (only the last token runs the LM head); the runner then
        holds the last token's logits and argmax."""
        if not ids:
            raise ModelError("prefill needs at least one token")
        if self.pos + len(ids) > self.ctx:
            raise ModelError(f"context of {self.ctx} tokens exceeded ({self.pos} + {len(ids)})")
        i, r = 0, self.runner
        for n, t in self.plan(len(ids)):
            chunk = [int(x) for x in ids[i : i + n]]
            last = i + n == len(ids)
            if t == 1:
                r = self.step(chunk[0], head=last)
            else:
                r = self._run(self.runner_for(t), chunk + [chunk[-1]] * (t - n), n, head=last)
            i += n
        return r

    def score(self, ids: list[int]) -> Iterator[np.ndarray]:
        """Append ``ids`` as :meth:`plan` says, with the scoring variants: yields the float32 logits of
        every appended token, a run at a time ([n, vocab] for the n real tokens of the run; views of
        the runner's output, valid until the next run). One pass over the LM head serves a whole
        chunk, where token by token it is read once per token (perplexity). A scoring variant writes no
        argmax: after it, ``self.runner.token()`` is not the last token's (take ``argmax`` of its row)."""
        if self.pos + len(ids) > self.ctx:
            raise ModelError(f"context of {self.ctx} tokens exceeded ({self.pos} + {len(ids)})")
        i = 0
        for n, t in self.plan(len(ids)):
            chunk = [int(x) for x in ids[i : i + n]]
            if t == 1:
                yield self.step(chunk[0]).logits()[None, :]
            else:
                yield self._run(self.scorer_for(t), chunk + [chunk[-1]] * (t - n), n, True).logits()[:n]
            i += n

    def forward(self, ids: list[int], all_logits: bool = False) -> np.ndarray:
        """Append ``ids``; float32 logits [1, vocab] of the last token (batched prefill), or
        [len(ids), vocab] with ``all_logits`` (batched too: :meth:`score`)."""
        if self.pos + len(ids) > self.ctx:
            raise ModelError(f"context of {self.ctx} tokens exceeded ({self.pos} + {len(ids)})")
        if not ids:
            return np.zeros((0, self.cfg.vocab), np.float32)
        if not all_logits:
            return self.prefill(list(ids)).logits().copy()[None, :]
        return np.concatenate([rows.copy() for rows in self.score(list(ids))])
