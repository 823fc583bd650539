"""The ASGI application: OpenAI-compatible routes over an `Engine` (Starlette)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from vtpu_cli.serve.backend import Backend, ChatTemplateError
from vtpu_cli.serve.engine import Engine, EngineBusy, EngineStopped, Event, TokenLogprob
from vtpu_cli.serve.engine import Request as GenRequest
from vtpu_cli.serve.protocol import ApiError, GenerationRequest, parse_chat, parse_completion, parse_json

log = logging.getLogger("vtpu.serve")
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # the OpenAI default for /v1/completions
MAX_BODY_BYTES = 8 << 20  # far above any prompt that fits a context
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


class Api:
    """Route handlers bound to one backend and its engine."""

    def __init__(self, backend: Backend, engine: Engine) -> None:
        self.backend = backend
        self.engine = engine
        self.created = int(time.time())

    # ---------------------------------------------------------------- plain routes

    async def health(self, request: Request) -> JSONResponse:
        s = self.engine.stats
        ok = self.engine.failure is None
        body = {
            "status": "ok" if ok else "error",
            "model": self.backend.model_id,
            "active": s.active,
            "waiting": s.waiting,
            "max_concurrent": self.engine.max_concurrent,
            "completed": s.completed,
            "cancelled": s.cancelled,
            "generated_tokens": s.generated_tokens,
            "prompt_tokens": s.prompt_tokens,
            "decode_steps": s.steps,
            "mean_batch": round(s.step_seqs / s.steps, 3) if s.steps else 0.0,
            "kv_bytes_per_sequence": self.backend.state_bytes(),
            "rss_bytes": _rss_bytes(),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [self._model_card()]})

    async def model(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if name != self.backend.model_id:
            return error_response(
                ApiError(
                    f"the model '{name}' does not exist", status=404, param="model", code="model_not_found"
                )
            )
        return JSONResponse(self._model_card())

    def _model_card(self) -> dict[str, Any]:
        return {
            "id": self.backend.model_id,
            "object": "model",
            "created": self.created,
            "owned_by": "vtpu",
            "context_length": self.backend.ctx,
        }

    # ---------------------------------------------------------------- generation

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, chat=False)

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, chat=True)

    async def _generate(self, request: Request, *, chat: bool) -> Response:
        try:
            body = parse_json(await _read_body(request))
            parse = parse_chat if chat else parse_completion
            req = parse(body, self.backend.model_id)
            prompt_ids, prompt_text = await run_in_threadpool(self._tokenize, req)
            if not prompt_ids:  # possible for a model that adds no BOS
                raise ApiError("the prompt is empty: nothing to continue from", param="prompt")
            max_tokens = self._budget(req, len(prompt_ids), chat)
            gen = self.engine.submit(prompt_ids, req.sampling(max_tokens), asyncio.get_running_loop())
        except ApiError as err:
            return error_response(err)
        except EngineBusy as exc:
            return error_response(ApiError(str(exc), status=429, code="server_busy", kind="server_error"))
        except EngineStopped as exc:
            return error_response(ApiError(str(exc), status=503, code="unavailable", kind="server_error"))
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        # "object" is filled in per response; listed here so that keys come in the OpenAI order.
        meta = {"id": rid, "object": "", "created": int(time.time()), "model": self.backend.model_id}
        echo = prompt_text if req.echo else ""
        lp = _Logprobs(self.backend, prompt_ids, len(prompt_text)) if req.logprobs is not None else None
        if req.stream:
            chunks = self._sse(gen, request, meta, chat, req.include_usage, echo, lp)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
        return await self._collect(gen, request, meta, chat, echo, lp)

    def _tokenize(self, req: GenerationRequest) -> tuple[list[int], str]:
        """Prompt ids (and text, for echo); a chat template that rejects the conversation is a 400."""
        if req.messages is not None:
            try:
                return self.backend.encode_chat(req.messages), ""
            except ChatTemplateError as exc:
                raise ApiError(str(exc), param="messages") from None
        if isinstance(req.prompt, list):
            vocab = self.backend.vocab_size
            if max(req.prompt) >= vocab:
                raise ApiError(
                    f"token id {max(req.prompt)} is outside the vocabulary ({vocab})", param="prompt"
                )
            return list(req.prompt), self.backend.decode(req.prompt)
        assert isinstance(req.prompt, str)
        return self.backend.encode(req.prompt), req.prompt

    def _budget(self, req: GenerationRequest, n_prompt: int, chat: bool) -> int:
        """max_tokens after checking the context: an explicit request that does not fit is a 400."""
        ctx = self.backend.ctx
        room = ctx - n_prompt
        if req.max_tokens == 0:  # echo alone (scoring a prompt): no room needed
            if room < 0:
                raise ApiError(
                    f"this model's maximum context length is {ctx} tokens; the prompt has {n_prompt} tokens",
                    param="prompt",
                    code="context_length_exceeded",
                )
            return 0
        if room < 1:
            raise ApiError(
                f"this model's maximum context length is {ctx} tokens; the prompt has {n_prompt} tokens, "
                "which leaves no room for a completion",
                param="messages" if chat else "prompt",
                code="context_length_exceeded",
            )
        if req.max_tokens is None:
            return room if chat else min(room, COMPLETIONS_DEFAULT_MAX_TOKENS)
        if req.max_tokens > room:
            raise ApiError(
                f"this model's maximum context length is {ctx} tokens; you requested {n_prompt + req.max_tokens} "
                f"tokens ({n_prompt} in the prompt, {req.max_tokens} for the completion)",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return req.max_tokens

    async def _collect(
        self,
        gen: GenRequest,
        request: Request,
        meta: dict[str, Any],
        chat: bool,
        echo: str,
        lp: _Logprobs | None = None,
    ) -> Response:
        """A whole (non-streamed) answer; a client that disconnects meanwhile cancels it."""
        watcher = asyncio.create_task(_cancel_on_disconnect(request, gen))
        parts = [echo]
        last = Event("", "cancelled")
        prompt_lp: tuple = ()
        gen_lp: list[TokenLogprob] = []
        try:
            async for ev in gen.stream():
                parts.append(ev.text)
                gen_lp += ev.logprobs
                if ev.prompt_logprobs is not None:
                    prompt_lp = ev.prompt_logprobs
                last = ev
        finally:
            watcher.cancel()
            gen.cancel()
        if last.finish_reason == "cancelled" or last.error:
            status, code = (
                (503, "shutting_down") if last.finish_reason == "cancelled" else (500, "generation_failed")
            )
            return error_response(
                ApiError(
                    last.error or "the request was cancelled", status=status, code=code, kind="server_error"
                )
            )
        text = "".join(parts)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None if lp is None else lp.chat(gen_lp),
                "finish_reason": last.finish_reason,
            }
        else:
            logprobs = None
            if lp is not None:
                logprobs = lp.completion(lp.prompt(prompt_lp) if prompt_lp else [], gen_lp)  # (echo only)
            choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": last.finish_reason}
        body = {
            **meta,
            "object": "chat.completion" if chat else "text_completion",
            "system_fingerprint": None,
            "choices": [choice],
            "usage": _usage(last),
        }
        return JSONResponse(body)

    async def _sse(
        self,
        gen: GenRequest,
        request: Request,
        meta: dict[str, Any],
        chat: bool,
        include_usage: bool,
        echo: str,
        lp: _Logprobs | None = None,
    ) -> AsyncIterator[str]:
        """Server-sent events: one chunk per piece of text, a final chunk with finish_reason, `[DONE]`.
        With log probabilities each chunk carries those of the tokens accepted since the last one (the
        echoed prompt's with the echo chunk, sent once the prompt has been scored)."""
        obj = "chat.completion.chunk" if chat else "text_completion"
        extra = {"usage": None} if include_usage else {}

        def chunk(
            text: str | None,
            finish: str | None,
            first: bool = False,
            lps: tuple[TokenLogprob, ...] = (),
            prompt: tuple | None = None,
        ) -> str:
            logprobs = None
            if lp is not None and (lps or prompt):
                if chat:
                    logprobs = lp.chat(lps)
                else:
                    logprobs = lp.completion(lp.prompt(prompt) if prompt else [], lps)
            if chat:
                delta: dict[str, Any] = {} if text is None else {"content": text}
                if first:
                    delta = {"role": "assistant", "content": text or ""}
                choice: dict[str, Any] = {
                    "index": 0,
                    "delta": delta,
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }
            else:
                choice = {"index": 0, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
            payload = {**meta, "object": obj, "system_fingerprint": None, "choices": [choice], **extra}
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        watcher = asyncio.create_task(_cancel_on_disconnect(request, gen))
        try:
            if chat:
                yield chunk("", None, first=True)
            elif echo and lp is None:
                yield chunk(echo, None)
            async for ev in gen.stream():
                if ev.prompt_logprobs is not None:  # (echo with logprobs: the prompt has been scored)
                    yield chunk(echo, None, prompt=ev.prompt_logprobs)
                    if ev.finish_reason is None and not ev.text:
                        continue
                if ev.finish_reason is None:
                    yield chunk(ev.text, None, lps=ev.logprobs)
                    continue
                if ev.error or ev.finish_reason == "cancelled":
                    err = ApiError(
                        ev.error or "the request was cancelled",
                        status=500,
                        kind="server_error",
                        code="generation_failed",
                    )
                    yield f"data: {json.dumps(err.body())}\n\n"
                else:
                    if ev.text or ev.logprobs:
                        yield chunk(ev.text, None, lps=ev.logprobs)
                    yield chunk(None, ev.finish_reason)
                    if include_usage:
                        payload = {
                            **meta,
                            "object": obj,
                            "system_fingerprint": None,
                            "choices": [],
                            "usage": _usage(ev),
                        }
                        yield f"data: {json.dumps(payload)}\n\n"
                yield "data: [DONE]\n\n"
        finally:
            watcher.cancel()
            gen.cancel()  # no-op when finished; frees the slot when the client went away mid-stream


class _Logprobs:
    """The OpenAI shapes of log probabilities: the legacy completions object (``tokens``,
    ``token_logprobs``, ``top_logprobs``, ``text_offset``) and chat's ``content`` list (``token``,
    ``logprob``, ``bytes``, ``top_logprobs``). A token whose bytes are not UTF-8 on their own (a piece
    of a character) is written ``bytes:\\xNN...`` in the legacy shape, as OpenAI does; chat has ``bytes``.
    ``text_offset`` is the token's character offset in the prompt followed by the completion (as
    OpenAI's: echoed prompt tokens from 0, generated ones from the prompt's length on, echoed or not):
    the characters its predecessors' bytes decode to, special tokens (BOS) taking none."""

    def __init__(self, backend: Backend, prompt_ids: list[int], prompt_chars: int) -> None:
        self.backend = backend
        self.prompt_ids = prompt_ids
        self.prompt_chars = prompt_chars
        self.seen = {False: b"", True: b""}  # bytes of the tokens listed so far: generated, prompt

    def _text(self, token: int) -> str:
        b = self.backend.token_bytes(token)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes:" + "".join(f"\\x{c:02x}" for c in b)

    def _offset(self, token: int, prompt: bool) -> int:
        """The offset of ``token`` (then counted as seen)."""
        done = self.seen[prompt]
        at = len(done.decode("utf-8", "ignore")) + (0 if prompt else self.prompt_chars)
        if self.backend.decode([token]) or not self.backend.token_bytes(token).isascii():
            self.seen[prompt] = done + self.backend.token_bytes(token)  # (special tokens decode to "")
        return at

    def prompt(self, entries) -> list[tuple[int, TokenLogprob | None]]:
        return list(zip(self.prompt_ids, entries, strict=True))

    def completion(self, prompt: list, generated) -> dict[str, Any]:
        out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        items = [*((t, e, True) for t, e in prompt), *((e.token, e, False) for e in generated)]
        for tok, e, is_prompt in items:
            out["tokens"].append(self._text(tok))
            out["token_logprobs"].append(None if e is None else e.logprob)
            out["top_logprobs"].append(None if e is None else {self._text(t): v for t, v in e.top})
            out["text_offset"].append(self._offset(tok, is_prompt))
        return out

    def _token(self, token: int, logprob: float) -> dict[str, Any]:
        b = self.backend.token_bytes(token)
        return {"token": b.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(b)}

    def chat(self, generated) -> dict[str, Any]:
        content = [
            {**self._token(e.token, e.logprob), "top_logprobs": [self._token(t, v) for t, v in e.top]}
            for e in generated
        ]
        return {"content": content, "refusal": None}


async def _read_body(request: Request) -> bytes:
    """The request body, refusing (413) more than MAX_BODY_BYTES before reading it all into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(
            f"the request body is larger than {MAX_BODY_BYTES} bytes", status=413, code="body_too_large"
        )
    parts, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > MAX_BODY_BYTES:
            raise ApiError(
                f"the request body is larger than {MAX_BODY_BYTES} bytes", status=413, code="body_too_large"
            )
        parts.append(piece)
    return b"".join(parts)


def _rss_bytes() -> int | None:
    """Resident memory of this process now (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _usage(ev: Event) -> dict[str, int]:
    return {
        "prompt_tokens": ev.prompt_tokens,
        "completion_tokens": ev.completion_tokens,
        "total_tokens": ev.prompt_tokens + ev.completion_tokens,
    }


async def _cancel_on_disconnect(request: Request, gen: GenRequest) -> None:
    """Wait for the client to go away, then cancel its generation (frees the engine slot)."""
    with contextlib.suppress(Exception):
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gen.cancel()
                return


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    message = {
        404: f"no route {request.method} {request.url.path}",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, exc.detail)
    return error_response(ApiError(message, status=exc.status_code, kind=kind))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path, exc_info=exc)
    return error_response(ApiError(f"internal error: {type(exc).__name__}", status=500, kind="server_error"))


def create_app(backend: Backend, engine: Engine) -> Starlette:
    """The Starlette app; its lifespan starts and stops the engine thread."""
    api = Api(backend, engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await run_in_threadpool(engine.stop)

    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/models/{name:path}", api.model, methods=["GET"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
