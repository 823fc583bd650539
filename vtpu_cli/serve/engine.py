"""The scheduler: continuous batching of many requests over one `Backend`, on one engine thread.

Design (chosen over a one-at-a-time queue because decode is bound by streaming the weights, so one
step over B sequences costs far less than B steps):
* Up to `max_concurrent` sequences are *active* (each holds a KV state: this bounds memory); further
  requests wait in FIFO order and are admitted as slots free up.
* Each scheduler iteration is one `Backend.forward` pass over every active sequence: the next prompt
  chunk (`prefill_chunk` tokens) of each sequence still reading its prompt, while the pass holds at
  most `max_pass_tokens` tokens, and the last sampled token of each sequence that is generating. So a
  new prompt rides along with the running decodes (the weights are streamed once for both) instead of
  stalling them for a separate prefill, and a long prompt is read in bounded pieces. Chunk boundaries
  depend only on the prompt, never on the load.
* Sampling (the models package's `Sampler`, so a seeded request draws exactly what `vtpu generate` with
  the same seed would), detokenisation and stop strings are handled here, per sequence, each request
  with its own RNG (seeded by `seed`, else from the OS), so concurrent requests never share random state.
* Results go to the request's asyncio queue through `loop.call_soon_threadsafe`; cancelling a request
  (client gone) frees its slot at the start of the next iteration.
* Log probabilities (`logprobs`): of the model's own distribution at each position (softmax of the raw
  logits, before temperature, top-k and top-p), in float64: the chosen token's and its k most likely
  alternatives. A request that also wants its prompt scored (`echo` with `logprobs`) reads its prompt
  through `Backend.score` (every row's logits) instead of riding in the batched pass.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vtpu_cli.models.sampling import Sampler
from vtpu_cli.serve.backend import Backend

log = logging.getLogger("vtpu.serve")


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens; temperature 0 (or top_p 0) is greedy (argmax, ties to the lowest id)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int | None = None  # None: off; k: each token's log probability and its k best alternatives
    prompt_logprobs: bool = False  # also score the prompt (its first token has none)


@dataclass(frozen=True)
class TokenLogprob:
    """A token's log probability under the model at its position, and the ``k`` most likely tokens there
    (most likely first, ties to the lower id)."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


def token_logprob(logits: np.ndarray, token: int, k: int) -> TokenLogprob:
    """``token``'s log-softmax under ``logits`` (float64) and the top ``k`` entries."""
    x = np.asarray(logits, np.float64)
    m = float(x.max())
    lse = m + math.log(float(np.exp(x - m).sum()))
    top: tuple[tuple[int, float], ...] = ()
    k = min(k, x.size)
    if k:
        kth = x[np.argpartition(-x, k - 1)[k - 1]]
        idx = np.flatnonzero(x >= kth)  # every token tied with the k-th too, then ties to the lower id
        idx = idx[np.lexsort((idx, -x[idx]))][:k]
        top = tuple((int(i), float(x[i]) - lse) for i in idx)
    return TokenLogprob(int(token), float(x[token]) - lse, top)


@dataclass(frozen=True)
class Event:
    """A piece of one request's answer: new text, and on the last event why it finished. ``logprobs``: the
    generated tokens accepted since the previous event; ``prompt_logprobs`` (one event, before any
    text): the prompt's tokens, None for the first."""

    text: str
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None = None


class EngineBusy(Exception):
    """The wait queue is full (the HTTP layer answers 429)."""


class EngineStopped(Exception):
    """The engine is shutting down and takes no new requests (HTTP 503)."""


_ids = itertools.count()


@dataclass(eq=False)
class Request:
    """One generation: its inputs, its results queue, and (on the engine thread) its progress."""

    prompt: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    rid: int = field(default_factory=lambda: next(_ids))
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    cancelled: bool = False
    done: bool = False
    # engine-thread state
    state: Any = None
    pos: int = 0  # prompt tokens already prefilled
    generated: list[int] = field(default_factory=list)
    emitted: int = 0  # characters of decoded text already sent
    utf8_at: int = -1  # position of the trailing U+FFFD being held back
    utf8_wait: int = 0  # tokens for which it has been held
    sampler: Sampler | None = None
    lp_pending: list[TokenLogprob] = field(default_factory=list)  # not yet sent with an event
    prompt_lp: list[TokenLogprob | None] = field(default_factory=list)  # echo: the prompt's, so far
    prev_row: np.ndarray | None = None  # echo: the logits after the prompt's last scored token

    def cancel(self) -> None:
        """Called from the event loop when the client has gone: the engine drops it next iteration."""
        self.cancelled = True

    async def stream(self) -> AsyncIterator[Event]:
        """Events until (and including) the one with a finish_reason."""
        while True:
            ev = await self.events.get()
            yield ev
            if ev.finish_reason is not None:
                return


@dataclass
class EngineStats:
    """Counters for /health and the load report."""

    active: int = 0
    waiting: int = 0
    completed: int = 0
    cancelled: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    steps: int = 0
    step_seqs: int = 0  # sum of batch sizes over decode steps (mean batch = step_seqs / steps)


class Engine:
    """Runs a Backend on a dedicated thread; `submit` and `cancel` are safe from any thread."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_concurrent: int = 4,
        max_waiting: int = 256,
        prefill_chunk: int = 128,
        max_pass_tokens: int = 512,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.backend = backend
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting
        self.prefill_chunk = max(1, prefill_chunk)
        self.max_pass_tokens = max(1, max_pass_tokens)
        self.stats = EngineStats()
        self._inbox: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._waiting: deque[Request] = deque()
        self._active: list[Request] = []
        self._pending = 0  # submitted but not yet finished (guards max_waiting from any thread)
        self._lock = threading.Lock()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    # ---------------------------------------------------------------- public (any thread)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vtpu-serve-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish: requests still in flight are cancelled (the HTTP server has drained them already)."""
        self._stopping = True
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(
        self, prompt: Sequence[int], params: SamplingParams, loop: asyncio.AbstractEventLoop
    ) -> Request:
        """Queue a generation; its events arrive on `request.events` in `loop`."""
        if not prompt:
            raise ValueError("a generation needs at least one prompt token")
        with self._lock:
            if self.failure is not None:
                raise EngineStopped(
                    f"the generation engine has stopped ({self.failure!r}); restart the server"
                )
            if self._stopping:
                raise EngineStopped("the server is shutting down")
            if self._pending >= self.max_concurrent + self.max_waiting:
                raise EngineBusy(
                    f"{self._pending} requests are in progress or waiting (limit "
                    f"{self.max_concurrent} running + {self.max_waiting} waiting); retry later"
                )
            self._pending += 1
        req = Request(list(prompt), params, loop)
        self._inbox.put(req)
        return req

    # ---------------------------------------------------------------- engine thread

    def _run(self) -> None:
        try:
            while True:
                idle = not self._active and not self._waiting
                if not self._intake(block=idle):
                    break
                self._reap()
                self._admit()
                self._pass()
        except BaseException as exc:  # an engine bug must not leave clients hanging
            log.critical("the engine stopped", exc_info=exc)
            self.failure = exc
            for req in [*self._active, *self._waiting]:
                self._finish(req, "error", error=f"generation failed: {type(exc).__name__}: {exc}")
            self._active.clear()
            self._waiting.clear()
        finally:
            self._drain_inbox_on_exit()

    def _intake(self, block: bool) -> bool:
        """Move new requests to the wait queue; False once `stop` was called (in-flight work is cancelled)."""
        try:
            item = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
        except queue.Empty:
            return not self._stopping
        while True:
            if item is not None:
                self._waiting.append(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
        return not self._stopping

    def _drain_inbox_on_exit(self) -> None:
        pending = [*self._active, *self._waiting]
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                pending.append(item)
        for req in pending:
            if not req.done:
                self._finish(req, "cancelled", error="the server shut down")

    def _reap(self) -> None:
        """Drop cancelled requests, freeing their slots and KV memory at once."""
        for req in [r for r in self._active if r.cancelled]:
            self._active.remove(req)
            self._finish(req, "cancelled")
        if any(r.cancelled for r in self._waiting):
            for req in [r for r in self._waiting if r.cancelled]:
                self._finish(req, "cancelled")
            self._waiting = deque(r for r in self._waiting if not r.cancelled)

    def _admit(self) -> None:
        while self._waiting and len(self._active) < self.max_concurrent:
            req = self._waiting.popleft()
            if req.params.max_tokens == 0 and not req.params.prompt_logprobs:
                req.pos = len(req.prompt)  # echo alone: nothing to compute
                self.stats.prompt_tokens += len(req.prompt)
                self._finish(req, "length")
                continue
            req.state = self.backend.new_state()
            p = req.params
            # top_p 0 keeps only the most likely token: greedy.
            greedy = p.temperature <= 0 or p.top_p <= 0
            req.sampler = Sampler(
                0.0 if greedy else p.temperature, p.top_k, p.top_p if p.top_p > 0 else 1.0, p.seed
            )
            self._active.append(req)
        self.stats.active = len(self._active)
        self.stats.waiting = len(self._waiting)

    def _pass(self) -> None:
        """One model pass: a prompt chunk of every sequence still reading its prompt (within the token
        budget) and the last token of every sequence that is generating."""
        work: list[tuple[Request, list[int]]] = []
        scoring: list[tuple[Request, list[int]]] = []  # prompts whose every row is scored (echo logprobs)
        budget = self.max_pass_tokens
        for r in self._active:
            if r.pos < len(r.prompt):
                # chunk boundaries depend on the prompt only, never on the load; a chunk that does not fit
                # the budget waits for the next pass (the first one always goes)
                chunk = r.prompt[r.pos : r.pos + self.prefill_chunk]
                if (work or scoring) and len(chunk) > budget:
                    continue
                (scoring if r.params.prompt_logprobs else work).append((r, chunk))
                budget -= len(chunk)
        decoding = [(r, [r.generated[-1]]) for r in self._active if r.pos == len(r.prompt) and not r.done]
        work += decoding
        if not work and not scoring:
            return
        rows: list[tuple[Request, list[int], np.ndarray]] = []
        if work:
            try:
                logits = self.backend.forward([r.state for r, _ in work], [t for _, t in work])
            except Exception as exc:  # the requests of the batched pass only
                self._fail([r for r, _ in work if not r.done], exc)
            else:
                rows += [(r, t, row) for (r, t), row in zip(work, logits, strict=True)]
                if decoding:
                    self.stats.steps += 1
                    self.stats.step_seqs += len(decoding)
        for r, t in scoring:  # each alone: a failure ends that request only
            try:
                rows.append((r, t, self._score_prompt(r, t)))
            except Exception as exc:
                self._fail([r], exc)
        for req, toks, row in rows:
            try:
                if req.pos < len(req.prompt):
                    req.pos += len(toks)
                    if req.pos < len(req.prompt):
                        continue
                    self.stats.prompt_tokens += len(req.prompt)
                    if req.params.prompt_logprobs:
                        self._send(req, Event("", prompt_logprobs=tuple(req.prompt_lp)))
                    if req.params.max_tokens == 0:  # echo alone: the prompt (and its logprobs)
                        self._finish_active(req, "length", "")
                        continue
                self._accept(req, row)
            except Exception as exc:
                self._fail([req], exc)

    def _score_prompt(self, req: Request, chunk: list[int]) -> np.ndarray:
        """Append a prompt chunk through ``Backend.score`` and log-score its tokens (each under the row
        before it); returns the logits after its last token."""
        rows = self.backend.score(req.state, chunk)
        k = req.params.logprobs or 0
        for j, tok in enumerate(chunk):
            prev = rows[j - 1] if j else req.prev_row
            req.prompt_lp.append(None if prev is None else token_logprob(prev, tok, k))
        req.prev_row = rows[-1]
        return rows[-1]

    def _fail(self, reqs: list[Request], exc: Exception) -> None:
        """A model error ends the requests it touched (HTTP 500 / an error event); the server goes on."""
        log.error("generation failed for %d request(s)", len(reqs), exc_info=exc)
        for req in reqs:
            if req in self._active:
                self._active.remove(req)
            self._finish(req, "error", error=f"generation failed: {type(exc).__name__}: {exc}")

    def _accept(self, req: Request, logits: np.ndarray) -> None:
        """Sample the next token of `req`, send its new text, and finish it when it is done."""
        assert req.sampler is not None
        tok = req.sampler(logits)
        req.generated.append(tok)
        self.stats.generated_tokens += 1
        if req.first_token_at is None:
            req.first_token_at = time.perf_counter()
        if req.params.logprobs is not None and tok not in self.backend.eos_ids:
            req.lp_pending.append(token_logprob(logits, tok, req.params.logprobs))
        if tok in self.backend.eos_ids:
            self._finish_active(req, "stop", self.backend.decode(req.generated[:-1]))
            return
        text = self.backend.decode(req.generated)
        stops = req.params.stop
        if stops:
            start = max(0, req.emitted - max(map(len, stops)))
            hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
            if hits:
                cut = min(hits)
                if req.lp_pending:  # keep the entries of the tokens that start before the cut
                    first = len(req.generated) - len(req.lp_pending)
                    keep = sum(
                        len(self.backend.decode(req.generated[: first + j])) < cut
                        for j in range(len(req.lp_pending))
                    )
                    del req.lp_pending[keep:]
                self._finish_active(req, "stop", text[:cut])
                return
        full = (
            len(req.generated) >= req.params.max_tokens
            or len(req.prompt) + len(req.generated) >= self.backend.ctx
        )
        if full:
            self._finish_active(req, "length", text)
            return
        safe = len(text)
        # A trailing U+FFFD may be a multi-byte character whose remaining bytes are still to come: hold it
        # for up to 3 tokens (a UTF-8 character has at most 4 bytes), never longer, so that text that is
        # really invalid still streams. A U+FFFD at a new position starts a new wait.
        if safe > req.emitted and text[-1] == "\ufffd":
            if safe - 1 != req.utf8_at:
                req.utf8_at, req.utf8_wait = safe - 1, 0
            if req.utf8_wait < 3:
                req.utf8_wait += 1
                safe -= 1
        for s in stops:  # hold back a tail that may turn out to start a stop string
            for k in range(min(len(s) - 1, safe - req.emitted), 0, -1):
                if text.endswith(s[:k], 0, safe):
                    safe -= k
                    break
        if safe > req.emitted:
            self._send(req, Event(text[req.emitted : safe], logprobs=self._take_logprobs(req)))
            req.emitted = safe

    @staticmethod
    def _take_logprobs(req: Request) -> tuple[TokenLogprob, ...]:
        out = tuple(req.lp_pending)
        req.lp_pending.clear()
        return out

    def _finish_active(self, req: Request, reason: str, text: str) -> None:
        self._active.remove(req)
        self._finish(req, reason, tail=text[req.emitted :])

    def _finish(self, req: Request, reason: str, tail: str = "", error: str | None = None) -> None:
        if req.done:
            return
        req.done = True
        if req.state is not None:
            self.backend.release(req.state)
            req.state = None
        with self._lock:
            self._pending -= 1
        if reason == "cancelled":
            self.stats.cancelled += 1
        else:
            self.stats.completed += 1
        self.stats.active = len(self._active)
        lps = self._take_logprobs(req)
        self._send(req, Event(tail, reason, len(req.prompt), len(req.generated), error, logprobs=lps))

    def _send(self, req: Request, ev: Event) -> None:
        try:
            req.loop.call_soon_threadsafe(req.events.put_nowait, ev)
        except RuntimeError:  # the event loop has closed: nobody is listening any more
            pass
