"""OpenAI request validation: JSON bodies in, checked parameters out, or an `ApiError` (HTTP 400).

Strict on purpose: an unknown field, or a known OpenAI feature this server does not implement (n > 1,
penalties, tools), is an error that names the field, rather than something silently ignored that would
make a client believe it took effect.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vtpu_cli.serve.engine import SamplingParams

MAX_STOPS = 4
MAX_COMPLETION_LOGPROBS = 5  # /v1/completions `logprobs` (alternatives per token), OpenAI's bound
MAX_TOP_LOGPROBS = 20  # /v1/chat/completions `top_logprobs`


class ApiError(Exception):
    """An error the client caused or must handle; rendered as an OpenAI error body."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class GenerationRequest:
    """A validated completion or chat request, before tokenisation."""

    model: str
    prompt: str | list[int] | None  # completions: text or token ids
    messages: list[dict[str, str]] | None  # chat
    max_tokens: int | None  # None: as many as the context allows (chat) / 16 (completions)
    temperature: float
    top_p: float
    top_k: int
    stop: tuple[str, ...]
    seed: int | None
    stream: bool
    include_usage: bool
    echo: bool
    logprobs: int | None = None  # None: none; k: each token's log probability and its k best alternatives

    def sampling(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(
            max_tokens,
            self.temperature,
            self.top_p,
            self.top_k,
            self.stop,
            self.seed,
            self.logprobs,
            self.echo and self.logprobs is not None,
        )


def parse_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object", code="invalid_json")
    return data


# ------------------------------------------------------------------ field checkers


def _int(name: str, v: Any, lo: int | None = None) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ApiError(f"'{name}' must be an integer, got {json.dumps(v)}", param=name)
    if lo is not None and v < lo:
        raise ApiError(f"'{name}' must be at least {lo}, got {v}", param=name)
    return v


def _num(name: str, v: Any, lo: float, hi: float) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        raise ApiError(f"'{name}' must be a number, got {json.dumps(v)}", param=name)
    if not lo <= v <= hi:
        raise ApiError(f"'{name}' must be between {lo:g} and {hi:g}, got {v}", param=name)
    return float(v)


def _bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ApiError(f"'{name}' must be true or false, got {json.dumps(v)}", param=name)
    return v


def _stop(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise ApiError("'stop' must be a string or a list of strings", param="stop")
    if len(items) > MAX_STOPS:
        raise ApiError(f"'stop' may hold at most {MAX_STOPS} strings, got {len(items)}", param="stop")
    if any(not s for s in items):
        raise ApiError("'stop' strings must not be empty", param="stop")
    return tuple(items)


def _only(name: str, v: Any, allowed: Callable[[Any], bool], what: str) -> None:
    if not allowed(v):
        raise ApiError(f"'{name}' {what} is not supported by this server, got {json.dumps(v)}", param=name)


def _zero(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool) and v == 0)


# Fields a client may send and that must keep their neutral value here.
_NEUTRAL: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v is None or (v == 1 and not isinstance(v, bool)), "other than 1"),
    "best_of": (lambda v: v is None or (v == 1 and not isinstance(v, bool)), "other than 1"),
    "presence_penalty": (_zero, "other than 0"),
    "frequency_penalty": (_zero, "other than 0"),
    "logit_bias": (lambda v: v is None or v == {}, "(token biases)"),
    "suffix": (lambda v: v is None or v == "", "(insertion)"),
    "tools": (lambda v: v is None or v == [], "(tool calls)"),
    "tool_choice": (lambda v: v is None or v == "none", "(tool calls)"),
    "parallel_tool_calls": (lambda v: True, ""),  # meaningless without tools
    "store": (lambda v: v is None or v is False, "(stored completions)"),
    "metadata": (lambda v: v is None or isinstance(v, dict), "other than an object"),  # accepted, ignored
    "response_format": (
        lambda v: v is None or (isinstance(v, dict) and v.get("type") == "text" and len(v) == 1),
        "other than {'type': 'text'}",
    ),
}

_COMMON = {
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "user",
}
COMPLETION_FIELDS = _COMMON | {
    "prompt",
    "echo",
    "n",
    "best_of",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "suffix",
}
CHAT_FIELDS = _COMMON | {
    "messages",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "store",
    "metadata",
}


def _common(body: Mapping[str, Any], allowed: set[str], served: str) -> dict[str, Any]:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            f"unknown field(s): {', '.join(repr(u) for u in unknown)}", param=unknown[0], code="unknown_field"
        )
    for name, (ok, what) in _NEUTRAL.items():
        if name in body:
            _only(name, body[name], ok, what)
    model = body.get("model")
    if not isinstance(model, str):
        raise ApiError("'model' is required and must be a string", param="model")
    if model != served:
        raise ApiError(
            f"the model '{model}' does not exist; this server serves '{served}'",
            param="model",
            code="model_not_found",
        )
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise ApiError("'user' must be a string", param="user")
    opts = body.get("stream_options")
    include_usage = False
    if opts is not None:
        if not isinstance(opts, dict) or set(opts) - {"include_usage"}:
            raise ApiError("'stream_options' may only hold 'include_usage'", param="stream_options")
        include_usage = _bool("stream_options.include_usage", opts.get("include_usage", False))
    max_tokens = body.get("max_tokens")
    return {
        "model": model,
        "max_tokens": None if max_tokens is None else _int("max_tokens", max_tokens, 0),
        "temperature": 1.0
        if body.get("temperature") is None
        else _num("temperature", body["temperature"], 0, 2),
        "top_p": 1.0 if body.get("top_p") is None else _num("top_p", body["top_p"], 0, 1),
        "top_k": 0 if body.get("top_k") is None else _int("top_k", body["top_k"], 0),
        "stop": _stop(body.get("stop")),
        "seed": None if body.get("seed") is None else _int("seed", body["seed"], 0),
        "stream": False if body.get("stream") is None else _bool("stream", body["stream"]),
        "include_usage": include_usage,
    }


def parse_completion(body: Mapping[str, Any], served: str) -> GenerationRequest:
    """`POST /v1/completions`: `prompt` is a string or token ids (or a list holding one of those)."""
    c = _common(body, COMPLETION_FIELDS, served)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
            raise ApiError(
                "'prompt' must be a string, a list of token ids, or a list holding one of those "
                "(batches of several prompts are not supported)",
                param="prompt",
            )
    elif not isinstance(prompt, str):
        raise ApiError("'prompt' is required and must be a string or a list of token ids", param="prompt")
    echo = False if body.get("echo") is None else _bool("echo", body["echo"])
    if c["max_tokens"] == 0 and not echo:
        raise ApiError(
            "'max_tokens' must be at least 1 (0 only with 'echo': the prompt alone)", param="max_tokens"
        )
    lp = body.get("logprobs")
    logprobs = None if lp is None else _int("logprobs", lp, 0)
    if logprobs is not None and logprobs > MAX_COMPLETION_LOGPROBS:
        raise ApiError(
            f"'logprobs' must be at most {MAX_COMPLETION_LOGPROBS}, got {logprobs}", param="logprobs"
        )
    return GenerationRequest(prompt=prompt, messages=None, echo=echo, logprobs=logprobs, **c)


def parse_chat(body: Mapping[str, Any], served: str) -> GenerationRequest:
    """`POST /v1/chat/completions`: `messages` of system/developer/user/assistant turns with text content."""
    c = _common(body, CHAT_FIELDS, served)
    if body.get("max_completion_tokens") is not None:
        mct = _int("max_completion_tokens", body["max_completion_tokens"], 1)
        if c["max_tokens"] is not None and c["max_tokens"] != mct:
            raise ApiError("'max_tokens' and 'max_completion_tokens' disagree", param="max_completion_tokens")
        c["max_tokens"] = mct
    if c["max_tokens"] == 0:
        raise ApiError("'max_tokens' must be at least 1, got 0", param="max_tokens")
    want = False if body.get("logprobs") is None else _bool("logprobs", body["logprobs"])
    top = body.get("top_logprobs")
    top = None if top is None else _int("top_logprobs", top, 0)
    if top is not None and top > MAX_TOP_LOGPROBS:
        raise ApiError(f"'top_logprobs' must be at most {MAX_TOP_LOGPROBS}, got {top}", param="top_logprobs")
    if top and not want:
        raise ApiError("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError("'messages' is required and must be a non-empty list", param="messages")
    messages = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(f"'{where}' must be an object", param=where)
        role = m.get("role")
        if role not in ("system", "developer", "user", "assistant"):
            raise ApiError(
                f"'{where}.role' must be system, developer, user or assistant, got {json.dumps(role)}",
                param=f"{where}.role",
            )
        extra = set(m) - {"role", "content", "name"}
        if extra:
            raise ApiError(f"'{where}' has unsupported field(s) {sorted(extra)}", param=where)
        messages.append({"role": role, "content": _content(m.get("content"), where)})
    logprobs = (top or 0) if want else None
    return GenerationRequest(prompt=None, messages=messages, echo=False, logprobs=logprobs, **c)


def _content(v: Any, where: str) -> str:
    """Message content: a string, or a list of {"type": "text", "text": ...} parts (joined)."""
    if isinstance(v, str):
        return v
    if isinstance(v, list) and all(
        isinstance(p, dict)
        and p.get("type") == "text"
        and isinstance(p.get("text"), str)
        and set(p) == {"type", "text"}
        for p in v
    ):
        return "".join(p["text"] for p in v)
    raise ApiError(
        f"'{where}.content' must be a string or a list of text parts (images and audio are not supported)",
        param=f"{where}.content",
    )
