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
from vtpu_cli.serve.engine import Engine, EngineBusy, EngineStopped, Event
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
        if req.stream:
            chunks = self._sse(gen, request, meta, chat, req.include_usage, echo)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
        return await self._collect(gen, request, meta, chat, echo)

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
        self, gen: GenRequest, request: Request, meta: dict[str, Any], chat: bool, echo: str
    ) -> Response:
        """A whole (non-streamed) answer; a client that disconnects meanwhile cancels it."""
        watcher = asyncio.create_task(_cancel_on_disconnect(request, gen))
        parts = [echo]
        last = Event("", "cancelled")
        try:
            async for ev in gen.stream():
                parts.append(ev.text)
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
                "logprobs": None,
                "finish_reason": last.finish_reason,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": last.finish_reason}
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
    ) -> AsyncIterator[str]:
        """Server-sent events: one chunk per piece of text, a final chunk with finish_reason, `[DONE]`."""
        obj = "chat.completion.chunk" if chat else "text_completion"
        extra = {"usage": None} if include_usage else {}

        def chunk(text: str | None, finish: str | None, first: bool = False) -> str:
            if chat:
                delta: dict[str, Any] = {} if text is None else {"content": text}
                if first:
                    delta = {"role": "assistant", "content": text or ""}
                choice: dict[str, Any] = {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            else:
                choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            payload = {**meta, "object": obj, "system_fingerprint": None, "choices": [choice], **extra}
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        watcher = asyncio.create_task(_cancel_on_disconnect(request, gen))
        try:
            if chat:
                yield chunk("", None, first=True)
            elif echo:
                yield chunk(echo, None)
            async for ev in gen.stream():
                if ev.finish_reason is None:
                    yield chunk(ev.text, None)
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
                    if ev.text:
                        yield chunk(ev.text, None)
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
