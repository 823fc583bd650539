"""``vtpu generate`` and ``vtpu perplexity``: text generation and perplexity through the compiled model.

Every token runs the compiled decoder step (``compiled.py``) on the chosen engine; the host only looks
up embedding rows, samples (temperature / top-k / top-p; greedy takes the program's own argmax) and
streams text. Statistics go to stderr (or into the JSON object with ``--json``).
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from vtpu_cli.models.errors import ModelError


@dataclass
class GenStats:
    """What one generation measured (seconds, tokens per second, bytes)."""

    engine: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    load_s: float = 0.0  # reading the checkpoint and the converted-layout cache (or converting)
    layout_cache_hit: bool = False
    compile_s: float = 0.0  # phextcc + engine start of both step variants (JIT code generation or cache)
    prefill_s: float = 0.0
    decode_s: float = 0.0
    ttft_s: float = 0.0
    prompt_tps: float = 0.0
    decode_tps: float = 0.0
    peak_rss_bytes: int = 0
    # tiered JIT (docs/jit.md, "Tiers"): tokens whose run executed tier-0 code, and seconds from the start
    # of compilation (phextcc + JIT) to the end of the first token made by optimised code (0: none was)
    tier0_tokens: int = 0
    full_speed_s: float = 0.0
    stop: str = ""
    notes: list[str] = field(default_factory=list)


def peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux reports KiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


class TextStream:
    """Decodes the growing token list and writes only the new text; a trailing replacement character
    (an incomplete UTF-8 sequence split across tokens) is held back until the next token completes it."""

    def __init__(self, tokenizer, out: TextIO) -> None:
        self.tok = tokenizer
        self.out = out
        self.ids: list[int] = []
        self.sent = 0

    def push(self, token: int) -> None:
        self.ids.append(token)
        text = self.tok.decode(self.ids)
        safe = len(text.rstrip("\ufffd"))
        if safe > self.sent:
            self.out.write(text[self.sent : safe])
            self.out.flush()
            self.sent = safe

    def finish(self) -> str:
        text = self.tok.decode(self.ids)
        if len(text) > self.sent:
            self.out.write(text[self.sent :])
        self.out.flush()
        return text


def _read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise ModelError("give --prompt or --prompt-file, not both")
    if prompt_file is not None:
        try:
            return Path(prompt_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ModelError(f"{prompt_file}: cannot read the prompt ({e})") from None
    return prompt if prompt is not None else ""


def _open(model: Path, ctx: int, engine: str, sentrons: int, stats: GenStats, tiered: bool = False):
    from vtpu_cli.models.compiled import CompiledModel
    from vtpu_cli.models.loader import load_model

    if sentrons < 1:
        raise ModelError(f"--sentrons must be at least 1, got {sentrons}")
    if engine not in ("jit", "interp"):
        raise ModelError(f"unknown engine {engine!r} (choose jit or interp)")
    t0 = time.perf_counter()
    m = load_model(model, lazy=True)
    if m.tokenizer is None:
        raise ModelError(f"{model}: no tokenizer")
    from vtpu_cli.models.cache import cached_weights

    weights, stats.layout_cache_hit = cached_weights(m)
    t1 = time.perf_counter()
    cm = CompiledModel(m, ctx=ctx or None, engine=engine, weights=weights, sentrons=sentrons, tiered=tiered)
    t2 = time.perf_counter()
    stats.load_s = t1 - t0
    stats.compile_s = t2 - t1
    return m, cm


def _start(cm, stats: GenStats, sizes: set[int], scoring: set[int] = frozenset()) -> None:
    """Start the engines (JIT code generation or its disk cache) before the clock of the first token:
    the decode step, the prefill variants of ``sizes`` (those the prompt uses) and the scoring variants
    of ``scoring`` (perplexity); then ``settle``."""
    t = time.perf_counter()
    cm.start(sizes, scoring=scoring)
    settle()
    stats.compile_s += time.perf_counter() - t
    for why in sorted({r.fallback for r in cm.variants() if r.fallback}):
        print(f"note: running on the interpreter: {why}", file=sys.stderr)


def settle() -> None:
    """Free what starting the engines left behind before the first run brings the weights in: any
    cyclic garbage (a JIT compile takes its llvmlite IR module apart itself, ``compile._dismantle``;
    before that the module alone was ~670,000 objects, ~140 MiB at the 2B-4T shape), then the freed
    heap goes back to the system (``cache.trim_heap``). Costs ~10-60 ms."""
    import gc

    from vtpu_cli.models.cache import trim_heap

    gc.collect()
    trim_heap()


def _tier_seen(cm, stats: GenStats, since_first_run: float) -> None:
    """After a run: count the token if its run executed tier-0 code, and note when the first token came from
    optimised code (seconds from the start of compilation)."""
    last = cm.runner.last
    tier = getattr(last, "tier", 1)
    if tier == 0:
        stats.tier0_tokens += 1
    elif not stats.full_speed_s and stats.tier0_tokens:
        stats.full_speed_s = stats.compile_s + since_first_run


def _fail(e: Exception, json_out: bool) -> int:
    msg = str(e)
    if json_out:
        print(json.dumps({"status": "error", "error": msg}))
    else:
        print(f"error: {msg}", file=sys.stderr)
    return 2


def generate_command(
    model: Path,
    prompt: str | None = None,
    prompt_file: Path | None = None,
    n: int = 64,
    temp: float = 0.8,
    top_k: int = 40,
    top_p: float = 0.95,
    seed: int = 0,
    ctx: int = 0,
    sentrons: int = 1,
    engine: str = "jit",
    json_out: bool = False,
    out: TextIO | None = None,
) -> int:
    """Stream ``n`` generated tokens of ``model`` after the prompt; statistics to stderr (or JSON).
    Exit codes: 0 done, 2 bad model/prompt/usage (ModelError, naming file/key/tensor), 130 Ctrl-C."""
    from vtpu_cli.models.sampling import Sampler

    out = out or sys.stdout
    stats = GenStats()
    try:
        if n < 0:
            raise ModelError(f"-n must be at least 0, got {n}")
        text = _read_prompt(prompt, prompt_file)
        m, cm = _open(Path(model), ctx, engine, sentrons, stats, tiered=True)
        ids = m.tokenizer.encode(text)
        if not ids:
            raise ModelError("empty prompt: at least one token (e.g. BOS) is needed")
        if len(ids) > cm.ctx:
            raise ModelError(f"prompt of {len(ids)} tokens is longer than the context of {cm.ctx}")
        _start(cm, stats, cm.plan_sizes(len(ids), pos=0))
        sampler = Sampler(temperature=temp, top_k=top_k, top_p=top_p, seed=seed)
    except ModelError as e:
        return _fail(e, json_out)
    stream = TextStream(m.tokenizer, out if not json_out else _Null())
    eos = set(m.config.eos_ids)
    generated: list[int] = []
    stats.prompt_tokens = len(ids)
    try:
        t0 = time.perf_counter()
        logits = cm.forward(ids)[-1]
        tok = cm.runner.token() if sampler.greedy else sampler(logits.astype(np.float64))
        t1 = time.perf_counter()
        stats.prefill_s = stats.ttft_s = t1 - t0
        _tier_seen(cm, stats, t1 - t0)
        stats.stop = "length"
        for i in range(n):
            generated.append(tok)
            if tok in eos:
                stats.stop = "eos"
                break
            stream.push(tok)
            if i == n - 1:
                break
            if cm.pos >= cm.ctx:
                stats.stop = "context"
                break
            logits = cm.forward([tok])[-1]
            tok = cm.runner.token() if sampler.greedy else sampler(logits.astype(np.float64))
            _tier_seen(cm, stats, time.perf_counter() - t0)
        t2 = time.perf_counter()
        stats.decode_s = t2 - t1
    except KeyboardInterrupt:
        out.flush()
        print("\ninterrupted", file=sys.stderr)
        return 130
    except ModelError as e:
        return _fail(e, json_out)
    text_out = stream.finish()
    cm.start_optimised(wait_sent=10.0)  # tier-1 compiles left for later: for the next start (detached)
    stats.generated_tokens = len(generated)
    stats.engine = ",".join(sorted(cm.engines_used)) or engine
    stats.prompt_tps = stats.prompt_tokens / stats.prefill_s if stats.prefill_s else 0.0
    steps = max(0, len(generated) - 1)  # the first token comes from the prefill
    stats.decode_tps = steps / stats.decode_s if stats.decode_s and steps else 0.0
    stats.peak_rss_bytes = peak_rss()
    if json_out:
        print(json.dumps({"status": "ok", "text": text_out, "tokens": generated, "stats": asdict(stats)}))
    else:
        out.write("\n")
        out.flush()
        print(
            f"engine {stats.engine}: prompt {stats.prompt_tokens} tokens at {stats.prompt_tps:.1f} tok/s, "
            f"generated {stats.generated_tokens} at {stats.decode_tps:.1f} tok/s, time to first token "
            f"{stats.ttft_s * 1e3:.0f} ms, load {stats.load_s:.2f} s"
            f"{' (layout cache hit)' if stats.layout_cache_hit else ''}, compile {stats.compile_s:.2f} s, "
            f"peak RSS {stats.peak_rss_bytes / 2**20:.0f} MiB, stop: {stats.stop}",
            file=sys.stderr,
        )
        if stats.tier0_tokens:
            landed = (
                f"optimised code from {stats.full_speed_s:.2f} s after the start of compilation"
                if stats.full_speed_s
                else "the optimised code is still compiling (a background process stores it for the next start)"
            )
            print(f"JIT tiers: {stats.tier0_tokens} tokens from tier-0 code; {landed}", file=sys.stderr)
    return 0


class _Null:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def perplexity(cm, ids: list[int], progress=None) -> tuple[float, int]:
    """exp(mean negative log-likelihood) of ``ids`` in non-overlapping windows of the context (each
    window starts a fresh sequence; its tokens run in batched chunks that write every row's logits,
    ``CompiledModel.score``); returns (perplexity, tokens scored)."""
    nll, count = 0.0, 0
    win = cm.ctx
    for w0 in range(0, len(ids) - 1, win):
        window = ids[w0 : w0 + win + 1]
        if len(window) < 2:
            break
        cm.reset()
        count, nll = _score(cm, window, count, nll, progress)
    return (math.exp(nll / count) if count else float("nan")), count


def _score(cm, seq: list[int], count: int, nll: float, progress) -> tuple[int, float]:
    """Append ``seq[:-1]`` scoring each token's logits against the next token of ``seq``."""
    i = 0
    for rows in cm.score(seq[:-1]):
        for row in rows:
            nll += _nll(row, seq[i + 1])
            i += 1
            count += 1
            if progress is not None:
                progress(count)
    return count, nll


def _nll(logits: np.ndarray, target: int) -> float:
    x = logits.astype(np.float64)
    mx = x.max()
    return mx + math.log(np.exp(x - mx).sum()) - x[target]


def perplexity_second_half(cm, ids: list[int], bos: int | None, progress=None) -> tuple[float, int]:
    """llama-perplexity's method, for a like-for-like comparison: the text (tokenised with BOS) is cut
    into ``len // ctx`` chunks of ``ctx`` tokens (a partial tail is dropped); each chunk is a fresh
    sequence whose first token is replaced by BOS (when the model adds one); only the second half is
    scored: the logits at positions ctx/2 .. ctx-2 against the next token. The first half runs as a
    batched prefill."""
    n = cm.ctx
    first = n // 2
    nll, count = 0.0, 0
    for c0 in range(0, len(ids) // n * n, n):
        chunk = list(ids[c0 : c0 + n])
        if bos is not None:
            chunk[0] = bos
        cm.reset()
        cm.forward(chunk[:first])
        count, nll = _score(cm, chunk[first:], count, nll, progress)
    return (math.exp(nll / count) if count else float("nan")), count


def perplexity_command(
    model: Path,
    text_file: Path,
    ctx: int = 0,
    engine: str = "jit",
    json_out: bool = False,
    scoring: str = "all",
    sentrons: int = 1,
) -> int:
    """Perplexity of ``model`` over a text file, with progress on stderr. ``scoring``: ``all`` (every
    token, in non-overlapping windows of the context) or ``second-half`` (llama-perplexity's chunks)."""
    stats = GenStats()
    try:
        if scoring not in ("all", "second-half"):
            raise ModelError(f"unknown scoring {scoring!r} (choose all or second-half)")
        try:
            text = Path(text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ModelError(f"{text_file}: cannot read ({e})") from None
        m, cm = _open(Path(model), ctx, engine, sentrons, stats)
        ids = m.tokenizer.encode(text)
        if len(ids) < 2:
            raise ModelError(f"{text_file}: needs at least 2 tokens, found {len(ids)}")
        if scoring == "second-half":
            if len(ids) < 2 * cm.ctx:
                raise ModelError(
                    f"{text_file}: {len(ids)} tokens; --scoring second-half needs at least 2 x the context "
                    f"({2 * cm.ctx}), as llama-perplexity does"
                )
            half = cm.ctx // 2
            _start(cm, stats, cm.plan_sizes(half, pos=0), cm.plan_sizes(cm.ctx - 1 - half, pos=half))
        else:  # non-overlapping windows of ctx scored tokens: full ones, and a shorter last one
            n = len(ids) - 1
            sizes = cm.plan_sizes(min(cm.ctx, n), pos=0)
            if n > cm.ctx and n % cm.ctx:
                sizes |= cm.plan_sizes(n % cm.ctx, pos=0)
            _start(cm, stats, set(), sizes)
    except ModelError as e:
        return _fail(e, json_out)
    if scoring == "second-half":
        total = len(ids) // cm.ctx * (cm.ctx - 1 - cm.ctx // 2)
    else:
        total = len(ids) - 1
    t0 = time.perf_counter()

    def progress(done: int) -> None:
        if done % 16 == 0 or done == total:
            el = time.perf_counter() - t0
            print(f"\rperplexity: {done}/{total} tokens, {done / el:.1f} tok/s", end="", file=sys.stderr)

    try:
        if scoring == "second-half":
            bos = m.config.bos_id if ids and ids[0] == m.config.bos_id else None
            ppl, count = perplexity_second_half(cm, ids, bos, progress)
        else:
            ppl, count = perplexity(cm, ids, progress)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except ModelError as e:
        return _fail(e, json_out)
    el = time.perf_counter() - t0
    print("", file=sys.stderr)
    if json_out:
        res = {"status": "ok", "perplexity": ppl, "tokens": count, "seconds": el, "ctx": cm.ctx}
        res["scoring"] = scoring
        print(json.dumps(res))
    else:
        print(
            f"perplexity {ppl:.4f} over {count} tokens (context {cm.ctx}, scoring {scoring}, "
            f"{count / el:.1f} tok/s)"
        )
    return 0
