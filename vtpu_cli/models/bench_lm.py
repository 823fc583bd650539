"""``vtpu bench --lm MODEL|synthetic[:SHAPE]``: language-model benchmarks of the compiled BitNet step.

Measures, in one process: batched prefill tokens/s and time to first token (a fresh sequence per
repeat), decode tokens/s (median per-token time over greedy steps), peak RSS, first-run and warm
start-up, and the roofline fraction: bytes the step reads per decoded token (ternary weights, norms,
the LM head; the KV cache is ignored) times decode tokens/s, over a single-thread streaming-read
bandwidth measured in the same run (a native read loop over 256 MiB, median of 5 passes, once before
and once after the timed runs; the higher is used, since other load on a shared machine lowers it) --
the memory-bound ceiling of one sentron on this machine. For models whose reference forward pass is cheap
(ternary weights under 16 MiB) the decoded tokens are checked against the float64 reference
(``verified``); token ids are random (the benchmark needs no tokenizer).

Synthetic models (weights built in memory, no file): ``synthetic`` or ``synthetic:SHAPE`` where SHAPE
is a preset (``tiny``, ``100m``, ``2b4t``) optionally followed by overrides, e.g.
``synthetic:2b4t,layers=2,vocab=1000``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from vtpu_cli.models.errors import ModelError

VERIFY_MAX_TERNARY_BYTES = 16 << 20


def parse_synthetic(spec: str):
    """``synthetic[:preset[,key=value...]]`` -> LargeSpec; a bad spec is a ModelError."""
    from vtpu_cli.models.synth_large import PRESETS

    rest = spec.split(":", 1)[1] if ":" in spec else "tiny"
    parts = [p for p in rest.split(",") if p]
    name = parts[0] if parts and "=" not in parts[0] else "tiny"
    if name not in PRESETS:
        raise ModelError(f"{spec}: unknown synthetic shape {name!r} (presets: {', '.join(sorted(PRESETS))})")
    shape = PRESETS[name]
    fields = {f.name for f in dataclasses.fields(shape)}
    over: dict[str, int] = {}
    for p in parts[1 if parts and "=" not in parts[0] else 0 :]:
        k, _, v = p.partition("=")
        k = k.strip().replace("-", "_")
        if k not in fields or not v.strip().isdigit():
            raise ModelError(
                f"{spec}: bad override {p!r} (KEY=INT with KEY one of {', '.join(sorted(fields))})"
            )
        over[k] = int(v)
    shape = dataclasses.replace(shape, **over)
    if shape.hidden % shape.heads or (shape.hidden // shape.heads) % 32:
        raise ModelError(f"{spec}: hidden / heads must be a multiple of 32")
    if shape.heads % shape.kv_heads:
        raise ModelError(f"{spec}: heads must be a multiple of kv_heads")
    return name, shape


def synthetic_model(shape, ctx: int):
    """A random model of ``shape`` built in memory (the vtpu layout directly; f16 embedding)."""
    from vtpu_cli.models.bench_generate import build

    return build(
        shape.hidden, shape.ffn, shape.layers, shape.heads, shape.kv_heads, shape.vocab, ctx, shape.seed
    )


def stream_bandwidth(nbytes: int = 256 << 20, passes: int = 5, threads: int = 1) -> tuple[float, str]:
    """Streaming-read bandwidth in bytes/s over an array larger than the last-level cache (median of
    ``passes``), and how it was measured. ``threads`` > 1 reads 1/threads of it per thread at once (the
    ceiling of a step split over that many sentrons; the native read releases the GIL)."""
    import threading

    from vtpu_cli.bench.stream import native_reader

    a = np.ones(nbytes // 8, np.int64)
    native = native_reader()
    if native is not None:
        raw = a.view(np.uint8)
        step = raw.shape[0] // threads // 256 * 256
        parts = [raw[i * step : (i + 1) * step if i < threads - 1 else raw.shape[0]] for i in range(threads)]

        def read() -> None:
            if threads == 1:
                native(raw)
                return
            th = [threading.Thread(target=native, args=(p,)) for p in parts]
            for t in th:
                t.start()
            for t in th:
                t.join()

        how = "native 4x64-byte XOR read loop (llvmlite)" + (f", {threads} threads" if threads > 1 else "")
    else:

        def read() -> None:
            a.max()

        how = "numpy max"
    read()  # fault the pages in
    times = []
    for _ in range(passes):
        t = time.perf_counter()
        read()
        times.append(time.perf_counter() - t)
    return nbytes / statistics.median(times), how


def bytes_per_token(cm) -> int:
    """Bytes the decode step reads per token: every weight scroll (ternary tiles, norms, scales, head)."""
    from vtpu_cli.core import coords
    from vtpu_cli.models.compiled import io_coord

    skip = {coords.parse_packed(io_coord(n)) for n in ("kv", "cs")}
    return int(sum(b.nbytes for c, b in cm.shared.items() if c not in skip))


def weight_buffers(cm) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The scrolls a decode step reads per token, split into (the layers' weights -- ternary tiles,
    norms, scales --, the LM head: its int8 rows and row scales); the KV cache and RoPE table are left
    out, as in :func:`bytes_per_token`."""
    from vtpu_cli.core import coords
    from vtpu_cli.models.compiled import io_coord, weight_coord

    skip = {coords.parse_packed(io_coord(n)) for n in ("kv", "cs")}
    head = {coords.parse_packed(weight_coord(r)) for r in ("head", "hsc")}
    layers = [b for c, b in cm.shared.items() if c not in skip and c not in head]
    return layers, [b for c, b in cm.shared.items() if c in head]


def paired_decode(cm, rounds: int = 7, threads: int = 1) -> dict | None:
    """Where a decode step's time goes, against the same bytes read natively in the same minutes.

    Each round runs, at the current position (the step is re-run in place: it rewrites the same KV-cache
    row, the position does not advance), a whole decode step, a step without the LM head, a native
    streaming read of the layers' weight scrolls and one of the head's (``threads`` > 1: each scroll
    split over that many threads, the ceiling of an N-sentron step). Times are medians over the rounds
    (the head's: the difference of the two step medians); each fraction is the median over the rounds of
    that round's read time over its step time for the same bytes (> 1: the step outran the read; the
    head's step time per round is the whole step less the step without it). Returns None without a
    native reader."""
    import threading

    from vtpu_cli.bench.stream import native_reader

    rd = native_reader()
    if rd is None:
        return None
    runner = cm.runners[1]
    layer_bufs, head_bufs = weight_buffers(cm)
    x = cm.model.embedding.take([cm.runner.token()])

    def read(bufs: list[np.ndarray]) -> float:
        t = time.perf_counter()
        for buf in bufs:
            if threads == 1:
                rd(buf)
                continue
            step = buf.shape[0] // threads // 256 * 256
            th = [
                threading.Thread(
                    target=rd, args=(buf[i * step : (i + 1) * step if i < threads - 1 else None],)
                )
                for i in range(threads)
            ]
            for h in th:
                h.start()
            for h in th:
                h.join()
        return time.perf_counter() - t

    def step(head: bool) -> float:
        t = time.perf_counter()
        runner.run(x, cm.pos, head=head)
        return time.perf_counter() - t

    step(True)
    want = runner.token()
    full, lay, r_lay, r_head = [], [], [], []
    for _ in range(rounds):
        full.append(step(True))
        if runner.token() != want:  # the same inputs must give the same token every round
            raise ModelError("the re-run decode step gave a different token")
        r_lay.append(read(layer_bufs))
        lay.append(step(False))
        r_head.append(read(head_bufs))
    med = statistics.median
    step_s, lay_s, rl, rh = med(full), med(lay), med(r_lay), med(r_head)
    head_s = step_s - lay_s
    nl, nh = sum(b.nbytes for b in layer_bufs), sum(b.nbytes for b in head_bufs)
    # fractions: the median of each round's ratio (a round's step and reads see the same load; medians
    # of separate series can come from different moments of a changing load)
    heads = [(h, f - g) for h, f, g in zip(r_head, full, lay, strict=True) if f > g]
    return {
        "rounds": rounds,
        "threads": threads,
        "step_ms": step_s * 1e3,
        "layers_step_ms": lay_s * 1e3,
        "head_ms": head_s * 1e3,
        "read_layers_ms": rl * 1e3,
        "read_head_ms": rh * 1e3,
        "layer_bytes": nl,
        "head_bytes": nh,
        "read_bytes_s": (nl + nh) / (rl + rh),
        "fraction": med([(a + c) / f for a, c, f in zip(r_lay, r_head, full, strict=True)]),
        "layers_fraction": med([a / g for a, g in zip(r_lay, lay, strict=True)]),
        "head_fraction": med([h / t for h, t in heads]) if heads else None,
        "roofline_tok_s": 1 / (rl + rh),
    }


def run_lm_bench(
    target: str,
    prompt: int = 64,
    tokens: int = 32,
    ctx: int = 0,
    engine: str = "jit",
    repeats: int = 3,
    prefill_chunk: int | tuple[int, ...] | None = None,
    verify: bool | None = None,
    log=None,
    sentrons: int = 1,
    paired_rounds: int = 7,
) -> dict:
    """Benchmark ``target`` (a model path or ``synthetic[:SHAPE]``); returns the result object.
    ``paired_rounds`` > 0 (JIT only) adds ``paired``: :func:`paired_decode`."""
    from vtpu_cli.models.compiled import CompiledModel
    from vtpu_cli.models.generate import peak_rss, settle

    say = log or (lambda s: None)
    ctx = ctx or max(256, prompt + tokens)
    if prompt < 1 or tokens < 2:
        raise ModelError("--lm-prompt must be at least 1 and --lm-tokens at least 2")
    out: dict = {
        "model": target,
        "engine": engine,
        "sentrons": sentrons,
        "prompt_tokens": prompt,
        "decode_tokens": tokens,
    }
    t0 = time.perf_counter()
    if target == "synthetic" or target.startswith("synthetic:"):
        name, shape = parse_synthetic(target)
        out["shape"] = dataclasses.asdict(shape) | {"preset": name}
        model = synthetic_model(shape, max(ctx, 256))
        weights, hit = None, None
    else:
        from vtpu_cli.models.cache import cached_weights
        from vtpu_cli.models.loader import load_model

        model = load_model(Path(target), lazy=True)
        weights, hit = cached_weights(model)
    c = model.config
    if prompt + tokens > min(ctx, c.max_ctx):
        raise ModelError(f"prompt {prompt} + {tokens} tokens exceed the context {min(ctx, c.max_ctx)}")
    t1 = time.perf_counter()
    kw = {} if prefill_chunk is None else {"prefill": prefill_chunk}
    cm = CompiledModel(model, ctx=ctx, engine=engine, weights=weights, sentrons=sentrons, **kw)
    t2 = time.perf_counter()
    say("engine start (JIT code generation or its disk cache)...")
    cm.start()
    settle()  # the JIT compile's cyclic IR garbage, as generate does
    t3 = time.perf_counter()
    out |= {
        "config": {k: getattr(c, k) for k in ("hidden", "ffn", "layers", "heads", "kv_heads", "vocab")},
        "ternary_weight_bytes": model.ternary_bytes,
        "load_s": t1 - t0,
        "layout_cache_hit": hit,
        "compile_s": t2 - t1,
        "engine_start_s": t3 - t2,
        "prefill_chunks": list(cm.prefill_sizes),
        "prefill_plan": cm.plan(prompt, pos=0),
    }
    rng = np.random.default_rng(5)
    ids = [int(x) for x in rng.integers(2, c.vocab, size=prompt)]
    # before and after the timed runs (the machine's load varies); N sentrons: an N-thread read
    bw0, how = stream_bandwidth(threads=sentrons)
    s = time.perf_counter()
    cm.forward(ids)
    out["first_prefill_s"] = time.perf_counter() - s
    out["startup_s"] = out["load_s"] + out["compile_s"] + out["engine_start_s"]
    pre = []
    for _ in range(repeats):
        cm.reset()
        s = time.perf_counter()
        cm.forward(ids)
        pre.append(time.perf_counter() - s)
        say(f"prefill {prompt} tokens: {pre[-1] * 1e3:.0f} ms")
    ttft = statistics.median(pre)
    tok = cm.runner.token()
    gen, step_s = [tok], []
    cm.step(tok)  # the first decode step may start the T = 1 engine
    for _ in range(tokens - 1):
        tok = cm.runner.token()
        gen.append(tok)
        s = time.perf_counter()
        cm.step(tok)
        step_s.append(time.perf_counter() - s)
    gen.append(cm.runner.token())
    dec = statistics.median(step_s)
    out |= {
        "ttft_s": ttft,
        "prefill_tok_s": prompt / ttft,
        "prefill_s_runs": pre,
        "decode_tok_s": 1 / dec,
        "decode_step_ms_median": dec * 1e3,
        "engines_used": sorted(cm.engines_used),
        "peak_rss_bytes": peak_rss(),
    }
    say(f"decode: {out['decode_tok_s']:.1f} tok/s; measuring memory bandwidth...")
    bw1, how = stream_bandwidth(threads=sentrons)
    bw = max(bw0, bw1)  # the higher one: a conservative (lower) roofline fraction
    bpt = bytes_per_token(cm)
    out |= {
        "weight_bytes_per_token": bpt,
        "stream_read_bytes_s": bw,
        "stream_read_bytes_s_before_after": [bw0, bw1],
        "stream_read_method": how,
        "roofline_tok_s": bw / bpt,
        "roofline_fraction": bpt * out["decode_tok_s"] / bw,
    }
    if paired_rounds and cm.engine == "jit":
        say("decode step vs the same bytes read natively, alternated...")
        out["paired"] = paired_decode(cm, paired_rounds, threads=sentrons)
    if verify is None:
        verify = model.ternary_bytes <= VERIFY_MAX_TERNARY_BYTES
    out["verified"] = None
    if verify:
        from vtpu_cli.models.reference import Reference

        ref = Reference(model, ctx=ctx, head="q8")
        logits = ref.forward(ids)[-1]
        want = []
        for _ in range(len(gen)):
            want.append(int(np.argmax(logits)))
            logits = ref.forward([want[-1]])[-1]
        out["verified"] = want == gen
        if not out["verified"]:
            first = next(i for i, (a, b) in enumerate(zip(want, gen, strict=True)) if a != b)
            out["verify_first_mismatch"] = first
    return out


def _fmt_paired(p: dict | None) -> list[str]:
    if not p:
        return []
    head = f"{p['head_fraction']:.2f}" if p["head_fraction"] else "-"
    return [
        f"  paired   {p['fraction'] * 100:8.1f} %     (step {p['step_ms']:.1f} ms vs {p['read_layers_ms'] + p['read_head_ms']:.1f} ms "
        f"reading its {(p['layer_bytes'] + p['head_bytes']) / 2**20:.0f} MiB at {p['read_bytes_s'] / 1e9:.1f} GB/s, "
        f"alternated, medians of {p['rounds']}: layers {p['layers_fraction']:.2f}, head {head})"
    ]


def _fmt(r: dict) -> str:
    c = r["config"]
    lines = [
        f"model {r['model']}: hidden {c['hidden']}, ffn {c['ffn']}, {c['layers']} layers, "
        f"{c['heads']}/{c['kv_heads']} heads, vocab {c['vocab']}; engine {','.join(r['engines_used'])}, "
        f"{r.get('sentrons', 1)} sentron(s)",
        f"  prefill  {r['prefill_tok_s']:9.1f} tok/s  ({r['prompt_tokens']} tokens, chunks of "
        f"{'/'.join(map(str, r['prefill_chunks'])) or '1'}; time to first token {r['ttft_s'] * 1e3:.0f} ms)",
        f"  decode   {r['decode_tok_s']:9.1f} tok/s  ({r['decode_step_ms_median']:.1f} ms/token, median of "
        f"{r['decode_tokens'] - 1})",
        f"  roofline {r['roofline_fraction'] * 100:8.1f} %     ({r['weight_bytes_per_token'] / 2**20:.1f} MiB/token "
        f"at {r['stream_read_bytes_s'] / 1e9:.1f} GB/s streaming read: ceiling {r['roofline_tok_s']:.1f} tok/s)",
        *_fmt_paired(r.get("paired")),
        f"  start-up {r['startup_s']:9.2f} s      (load {r['load_s']:.2f} s"
        f"{', layout cache hit' if r['layout_cache_hit'] else ''}, phextcc {r['compile_s']:.2f} s, engine start "
        f"{r['engine_start_s']:.2f} s; first prefill {r['first_prefill_s'] * 1e3:.0f} ms)",
        f"  peak RSS {r['peak_rss_bytes'] / 2**20:9.0f} MiB",
    ]
    v = r["verified"]
    lines.append(
        "  decode tokens equal the float64 reference"
        if v
        else "  not verified (reference too slow at this size)"
        if v is None
        else f"  MISMATCH with the reference at decode token {r.get('verify_first_mismatch')}"
    )
    return "\n".join(lines)


def bench_lm_command(
    target: str,
    prompt: int = 64,
    tokens: int = 32,
    ctx: int = 0,
    engine: str = "jit",
    repeats: int = 3,
    json_path: Path | None = None,
    sentrons: int = 1,
    quiet: bool = False,
) -> int:
    """CLI entry: exit 0, 1 when the decode tokens disagree with the reference, 2 on bad input, 130 on
    Ctrl-C. ``json_path`` ``-`` prints the JSON object on stdout instead of the table."""
    try:
        r = run_lm_bench(
            target,
            prompt,
            tokens,
            ctx,
            engine,
            repeats,
            log=None if quiet else (lambda s: print(s, file=sys.stderr)),
            sentrons=sentrons,
        )
    except ModelError as e:
        if json_path is not None and str(json_path) == "-":
            print(json.dumps({"status": "error", "error": str(e)}))
        else:
            print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    r["status"] = "ok" if r["verified"] is not False else "mismatch"
    if json_path is not None and str(json_path) == "-":
        print(json.dumps(r))
    else:
        print(_fmt(r))
        if json_path is not None:
            Path(json_path).write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {json_path}", file=sys.stderr)
    return 0 if r["verified"] is not False else 1
