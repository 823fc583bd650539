"""`vtpu serve`: the real server (a subprocess on a free loopback port) on a tiny synthetic BitNet model,
spoken to with the `openai` client and raw HTTP; answers are checked against the models package's
reference `generate` run alone. Plus unit tests of the engine's text handling and request validation.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from vtpu_cli.models import Reference, Sampler, load_model  # noqa: E402
from vtpu_cli.models.synth import SynthSpec, random_weights, train_tokenizer, write_hf  # noqa: E402
from vtpu_cli.serve.engine import Engine, SamplingParams  # noqa: E402
from vtpu_cli.serve.protocol import ApiError, parse_chat, parse_completion  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "tiny"
CTX = 1024


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SynthSpec(max_ctx=CTX)
    tok = train_tokenizer(spec.vocab)
    return write_hf(
        tmp_path_factory.mktemp("serve") / MODEL_ID, random_weights(spec, tok.get_vocab_size()), tok
    )


@pytest.fixture(scope="module")
def model(model_dir: Path) -> Any:
    return load_model(model_dir)


class Server:
    """`python -m vtpu_cli.serve` in a subprocess; `url` once it listens."""

    def __init__(self, model: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        engine = (
            [] if "--engine" in args else ["--engine", "reference"]
        )  # the batched reference: fast to start
        cmd = [sys.executable, "-m", "vtpu_cli.serve", str(model), "--port", "0", *engine, *args]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                raise RuntimeError(f"server exited: {self.proc.wait()} {self.proc.stderr.read()}")  # type: ignore[union-attr]
            self.lines.append(line)
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                return
        raise RuntimeError("server did not start")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "".join(self.lines) + out, err


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Server]:
    srv = Server(model_dir, "--max-concurrent", "4")
    yield srv
    rc, out, err = srv.stop()
    assert rc == 0, err
    assert "stopped" in out and "Traceback" not in err


@pytest.fixture
def client(server: Server) -> Any:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread() -> Iterator[None]:
    """The in-process reference runs with one BLAS thread, as the server does (much faster here)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


_REFERENCES: dict[int, Any] = {}


def reference(model: Any, ids: Sequence[int], n: int, sampler: Sampler | None = None) -> tuple[str, int, str]:
    """(text, completion tokens, finish_reason) of the models package's generate, run alone."""
    ref = _REFERENCES.setdefault(id(model), Reference(model, ctx=CTX))  # generate() starts afresh
    out = ref.generate(list(ids), n, sampler, stop_at_eos=True)
    eos = set(model.config.eos_ids)
    if out and out[-1] in eos:
        return model.tokenizer.decode(out[:-1]), len(out), "stop"
    return model.tokenizer.decode(out), len(out), "length"


def chat_ids(model: Any, messages: list[dict[str, str]]) -> list[int]:
    from vtpu_cli.serve.refbackend import ReferenceBackend

    return ReferenceBackend(model, ctx=CTX).encode_chat(messages)


# ------------------------------------------------------------------ the real server


def test_health_and_models(server: Server, client: Any) -> None:
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == MODEL_ID and health["max_concurrent"] == 4
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL_ID]
    assert models.data[0].object == "model"
    assert server.url.startswith("http://127.0.0.1:")  # loopback by default


def test_completion_matches_reference(client: Any, model: Any) -> None:
    prompt = "The quick brown fox"
    want, n, finish = reference(model, model.tokenizer.encode(prompt), 12)
    r = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=12, temperature=0)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.created > 0
    assert r.choices[0].text == want and r.choices[0].finish_reason == finish
    assert r.usage.prompt_tokens == len(model.tokenizer.encode(prompt))
    assert r.usage.completion_tokens == n and r.usage.total_tokens == n + r.usage.prompt_tokens
    # the same request streamed: the pieces add up to the same text
    chunks = list(
        client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=12, temperature=0, stream=True)
    )
    assert "".join(c.choices[0].text for c in chunks) == want
    assert chunks[-1].choices[0].finish_reason == finish
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    # token-id prompts and echo
    ids = model.tokenizer.encode(prompt)
    r2 = client.completions.create(model=MODEL_ID, prompt=ids, max_tokens=12, temperature=0, echo=True)
    assert r2.choices[0].text == model.tokenizer.decode(ids) + want


def test_chat_streaming_and_not(client: Any, model: Any) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello world!"}]
    ids = chat_ids(model, messages)
    assert model.tokenizer.decode(ids, skip_special=False).startswith("<|begin_of_text|>system: Be brief.\n")
    want, n, finish = reference(model, ids, 10)
    r = client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=10, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content == want
    assert r.choices[0].finish_reason == finish
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (len(ids), n)
    stream = client.chat.completions.create(
        model=MODEL_ID,
        messages=messages,
        max_tokens=10,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want
    assert chunks[-2].choices[0].finish_reason == finish
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == n


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def _tok_text(model: Any, t: int) -> str:
    return model.tokenizer.token_bytes(t).decode("utf-8", "replace")


def test_completion_logprobs_and_echoed_prompt(client: Any, model: Any) -> None:
    """`logprobs` (with `echo`: the prompt's too, max_tokens 0 allowed) against the reference's
    log-softmax at every position: what lm-evaluation-harness asks a completions server for."""
    prompt = "The quick brown fox"
    ids = model.tokenizer.encode(prompt)
    ref = Reference(model, ctx=CTX)
    lsm = _log_softmax(ref.forward(ids))  # row i: the distribution of token i + 1
    r = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=0, echo=True, logprobs=2)
    lp = r.choices[0].logprobs
    assert r.choices[0].text == prompt and r.usage.completion_tokens == 0
    assert lp.tokens == [_tok_text(model, t) for t in ids]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    want = [float(lsm[i - 1, ids[i]]) for i in range(1, len(ids))]
    np.testing.assert_allclose(lp.token_logprobs[1:], want, rtol=1e-9, atol=1e-9)
    for i in range(1, len(ids)):
        best = np.argsort(-lsm[i - 1], kind="stable")[:2]
        assert list(lp.top_logprobs[i].values()) == pytest.approx([lsm[i - 1, b] for b in best], abs=1e-9)
    assert lp.text_offset[0] == 0 and lp.text_offset[-1] == len(prompt) - len(lp.tokens[-1])
    # a prompt that fills the whole context can still be scored (nothing is generated)
    full = client.completions.create(model=MODEL_ID, prompt=[5] * CTX, max_tokens=0, echo=True, logprobs=0)
    assert len(full.choices[0].logprobs.token_logprobs) == CTX
    with pytest.raises(openai.BadRequestError, match="the prompt has 1025 tokens"):
        client.completions.create(model=MODEL_ID, prompt=[5] * (CTX + 1), max_tokens=0, echo=True)
    # generated tokens: each one's log probability where it was chosen (greedy: the best one)
    g = client.completions.create(model=MODEL_ID, prompt=prompt, max_tokens=4, temperature=0, logprobs=1)
    glp = g.choices[0].logprobs
    want_ids = ref.generate(list(ids), 4, None, stop_at_eos=True)
    assert len(glp.token_logprobs) == len([t for t in want_ids if t not in model.config.eos_ids])
    ref.reset()
    rows = _log_softmax(ref.forward(list(ids) + want_ids[:-1])[len(ids) - 1 :])
    for j, v in enumerate(glp.token_logprobs):
        assert v == pytest.approx(rows[j, want_ids[j]], abs=1e-9) and v == pytest.approx(
            rows[j].max(), abs=1e-9
        )
        assert list(glp.top_logprobs[j].values())[0] == pytest.approx(v, abs=1e-9)
    assert glp.text_offset[0] == len(prompt)
    # streamed: the same numbers, spread over the chunks
    chunks = list(
        client.completions.create(
            model=MODEL_ID, prompt=prompt, max_tokens=4, temperature=0, logprobs=1, echo=True, stream=True
        )
    )
    got = [v for c in chunks if c.choices[0].logprobs for v in c.choices[0].logprobs.token_logprobs]
    assert got[0] is None and got[1 : len(ids)] == pytest.approx(want, abs=1e-9)
    assert got[len(ids) :] == pytest.approx(glp.token_logprobs, abs=1e-9)
    assert "".join(c.choices[0].text for c in chunks) == prompt + g.choices[0].text


def test_chat_logprobs(client: Any, model: Any) -> None:
    messages = [{"role": "user", "content": "Hello world!"}]
    ids = chat_ids(model, messages)
    r = client.chat.completions.create(
        model=MODEL_ID, messages=messages, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    content = r.choices[0].logprobs.content
    ref = Reference(model, ctx=CTX)
    out = ref.generate(list(ids), 5, None, stop_at_eos=True)
    ref.reset()
    rows = _log_softmax(ref.forward(list(ids) + out[:-1])[len(ids) - 1 :])
    kept = [t for t in out if t not in model.config.eos_ids]
    assert len(content) == len(kept)
    for j, (e, t) in enumerate(zip(content, kept, strict=True)):
        assert e.logprob == pytest.approx(rows[j, t], abs=1e-9)
        assert bytes(e.bytes) == model.tokenizer.token_bytes(t)
        assert len(e.top_logprobs) == 3 and e.top_logprobs[0].logprob == pytest.approx(e.logprob, abs=1e-9)
        assert [x.logprob for x in e.top_logprobs] == sorted(
            (x.logprob for x in e.top_logprobs), reverse=True
        )
    assert (
        b"".join(bytes(e.bytes) for e in content).decode("utf-8", "replace") == r.choices[0].message.content
    )
    stream = client.chat.completions.create(
        model=MODEL_ID, messages=messages, max_tokens=5, temperature=0, logprobs=True, stream=True
    )
    streamed = [
        e.logprob
        for c in stream
        if c.choices and c.choices[0].logprobs
        for e in c.choices[0].logprobs.content
    ]
    assert streamed == pytest.approx([e.logprob for e in content], abs=1e-9)
    plain = client.chat.completions.create(model=MODEL_ID, messages=messages, max_tokens=2, temperature=0)
    assert plain.choices[0].logprobs is None


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"prompt": "x", "logprobs": 6}, "logprobs"),
        ("/v1/completions", {"prompt": "x", "logprobs": True}, "logprobs"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
            "top_logprobs",
        ),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "logprobs": True, "top_logprobs": 21},
            "top_logprobs",
        ),
    ],
)
def test_logprobs_requests_checked(server: Server, path: str, body: dict[str, Any], param: str) -> None:
    r = httpx.post(server.url + path, json={"model": MODEL_ID, **body})
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_sse_wire_format(server: Server) -> None:
    body = {"model": MODEL_ID, "prompt": "Hello", "max_tokens": 3, "temperature": 0, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "length"


def test_stop_strings_and_seed(client: Any, model: Any) -> None:
    prompt = "Hello again, world."
    full, _, _ = reference(model, model.tokenizer.encode(prompt), 40)
    # a printable two-character stop string from the middle of the greedy answer
    start = next(i for i in range(3, len(full) - 2) if full[i : i + 2].isalnum())
    stop = full[start : start + 2]
    want = full[: full.find(stop)]
    for stream in (False, True):
        r = client.completions.create(
            model=MODEL_ID, prompt=prompt, max_tokens=40, temperature=0, stop=[stop], stream=stream
        )
        if stream:
            chunks = list(r)
            text, finish = "".join(c.choices[0].text for c in chunks), chunks[-1].choices[0].finish_reason
        else:
            text, finish = r.choices[0].text, r.choices[0].finish_reason
        assert (text, finish) == (want, "stop")
    # a seeded sampled answer is what the models package's sampler draws with that seed
    ids = model.tokenizer.encode(prompt)
    want_s, _, _ = reference(model, ids, 16, Sampler(0.9, 0, 0.95, seed=7))
    r = client.completions.create(
        model=MODEL_ID, prompt=prompt, max_tokens=16, temperature=0.9, top_p=0.95, seed=7
    )
    assert r.choices[0].text == want_s


BAD_REQUESTS = [
    ("/v1/completions", b'{"model": "tiny", "prompt": ', "invalid_json"),
    ("/v1/completions", b"[1, 2]", "invalid_json"),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "temprature": 0.5}, "unknown_field"),
    ("/v1/completions", {"model": "gpt-4", "prompt": "x"}, "model_not_found"),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": -5}, None),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": "8"}, None),
    ("/v1/completions", {"model": "tiny", "prompt": [5] * CTX}, "context_length_exceeded"),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "max_tokens": CTX}, "context_length_exceeded"),
    ("/v1/completions", {"model": "tiny", "prompt": [10**6]}, None),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "n": 2}, None),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "temperature": 3}, None),
    ("/v1/completions", {"model": "tiny", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, None),
    ("/v1/completions", {"model": "tiny"}, None),
    ("/v1/chat/completions", {"model": "tiny", "messages": []}, None),
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}, None),
    (
        "/v1/chat/completions",
        {"model": "tiny", "messages": [{"role": "user", "content": "x" * 2000}]},
        "context_length_exceeded",
    ),
]


@pytest.mark.parametrize(("path", "body", "code"), BAD_REQUESTS)
def test_bad_requests_are_400(server: Server, path: str, body: Any, code: str | None) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(server.url + path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"] and err["type"] == "invalid_request_error"
    if code:
        assert err["code"] == code
    # and the server keeps serving
    ok = httpx.post(server.url + "/v1/completions", json={"model": MODEL_ID, "prompt": "Hi", "max_tokens": 2})
    assert ok.status_code == 200


def test_oversized_body_is_413(server: Server) -> None:
    body = json.dumps({"model": MODEL_ID, "prompt": "x" * (9 << 20)}).encode()
    r = httpx.post(server.url + "/v1/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_openai_client_sees_bad_request(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL_ID, prompt="x", max_tokens=-1)
    assert "max_tokens" in str(info.value)
    with pytest.raises(openai.NotFoundError):
        client.get("/nope", cast_to=object)


def _health(server: Server) -> dict[str, Any]:
    return httpx.get(server.url + "/health").json()


def test_disconnect_frees_slot(server: Server) -> None:
    before = _health(server)["cancelled"]
    # greedy from this prompt runs for 950 tokens before EOS: several seconds on the reference
    body = {"model": MODEL_ID, "prompt": "cache", "max_tokens": 900, "temperature": 0, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body) as r:
        lines = r.iter_lines()  # (kept: dropping the iterator would close the connection)
        assert next(lines).startswith("data: ")  # the first event has arrived: the sequence holds a slot
        assert _health(server)["active"] >= 1
    # the connection is closed mid-stream: the slot is freed long before the answer could have finished
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (h := _health(server))["cancelled"] == before:
        time.sleep(0.02)
    assert h["cancelled"] == before + 1 and h["active"] == 0
    # a client that gives up waiting for a non-streamed answer frees its slot too
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", json={**body, "stream": False}, timeout=0.5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (h := _health(server))["cancelled"] == before + 1:
        time.sleep(0.02)
    assert h["cancelled"] == before + 2 and h["active"] == 0


def test_load_no_request_lost_or_mixed(server: Server, model: Any) -> None:
    """200 requests from 8 concurrent clients (the server decodes 4 at a time, the rest queue): every
    answer equals the same request run alone through the reference."""
    words = ["fox", "dog", "sun", "forest", "tensor", "ternary", "cache", "rope", "norm", "world"]
    prompts = [f"{words[i % 10]} {words[(i * 3) % 10]} {i}" for i in range(40)]
    lengths = [4 + (i * 7) % 13 for i in range(40)]
    expected = {
        i: reference(model, model.tokenizer.encode(p), n)
        for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))
    }
    jobs = [(k, k % 40, k % 3 == 0) for k in range(200)]

    async def run() -> dict[int, tuple[str, int, str]]:
        aclient = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)
        results: dict[int, tuple[str, int, str]] = {}
        queue: asyncio.Queue[tuple[int, int, bool]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker() -> None:
            while not queue.empty():
                k, i, stream = queue.get_nowait()
                kw = {"model": MODEL_ID, "prompt": prompts[i], "max_tokens": lengths[i], "temperature": 0}
                if stream:
                    r = await aclient.completions.create(
                        **kw, stream=True, stream_options={"include_usage": True}
                    )
                    chunks = [c async for c in r]
                    text = "".join(c.choices[0].text for c in chunks if c.choices)
                    results[k] = (
                        text,
                        chunks[-1].usage.completion_tokens,
                        chunks[-2].choices[0].finish_reason,
                    )
                else:
                    r = await aclient.completions.create(**kw)
                    results[k] = (r.choices[0].text, r.usage.completion_tokens, r.choices[0].finish_reason)

        await asyncio.gather(*(worker() for _ in range(8)))
        await aclient.close()
        return results

    results = asyncio.run(asyncio.wait_for(run(), 120))
    assert sorted(results) == list(range(200))
    wrong = [k for k, i, _ in jobs if results[k] != expected[i]]
    assert not wrong, f"{len(wrong)} answers differ, e.g. request {wrong[0]}"
    assert _health(server)["active"] == 0


def test_sigterm_drains_then_exits(model_dir: Path, model: Any) -> None:
    srv = Server(model_dir)
    prompt = "Numbers such as 12"
    want, _, _ = reference(model, model.tokenizer.encode(prompt), 60)
    result: dict[str, Any] = {}

    def ask() -> None:
        body = {"model": MODEL_ID, "prompt": prompt, "max_tokens": 60, "temperature": 0}
        result["r"] = httpx.post(srv.url + "/v1/completions", json=body, timeout=30)

    t = threading.Thread(target=ask)
    t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and httpx.get(srv.url + "/health").json()["active"] == 0:
        time.sleep(0.01)
    rc, out, err = srv.stop(signal.SIGTERM)
    t.join(30)
    assert rc == 0 and "stopped" in out and "Traceback" not in err
    assert result["r"].status_code == 200 and result["r"].json()["choices"][0]["text"] == want
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/health")


def test_long_prompts_read_in_chunks_alongside_decodes(server: Server, model: Any) -> None:
    """Prompts of several 128-token chunks, arriving while others decode, still give the answers of the
    reference run alone (chunked prefill in shared passes changes nothing)."""
    prompts = [[(7 * i + k) % 250 + 2 for i in range(n)] for k, n in enumerate((300, 5, 520, 129, 3))]
    want = [reference(model, p, 8) for p in prompts]

    async def run() -> list[tuple[str, int, str]]:
        async with httpx.AsyncClient(timeout=60) as c:

            async def one(p: list[int]) -> tuple[str, int, str]:
                body = {"model": MODEL_ID, "prompt": p, "max_tokens": 8, "temperature": 0}
                r = (await c.post(server.url + "/v1/completions", json=body)).json()
                return (
                    r["choices"][0]["text"],
                    r["usage"]["completion_tokens"],
                    r["choices"][0]["finish_reason"],
                )

            return list(await asyncio.gather(*(one(p) for p in prompts)))

    assert asyncio.run(run()) == want


def test_gguf_model(tmp_path: Path, model: Any) -> None:
    """A TQ2_0 GGUF of the same weights serves the same greedy answer; its id is the file's stem."""
    from vtpu_cli.models.synth import write_all

    gguf = write_all(tmp_path, SynthSpec(max_ctx=CTX))["tq2_0"]
    srv = Server(gguf)
    try:
        prompt = "The lazy dog"
        want, _, _ = reference(model, model.tokenizer.encode(prompt), 10)
        r = httpx.post(
            srv.url + "/v1/completions",
            json={"model": "model-tq2_0", "prompt": prompt, "max_tokens": 10, "temperature": 0},
        )
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == want
    finally:
        assert srv.stop()[0] == 0


def test_ctrl_c_exit_code(model_dir: Path) -> None:
    srv = Server(model_dir, "--ctx", "64")
    assert "context 64" in "".join(srv.lines)
    rc, _, err = srv.stop(signal.SIGINT)
    assert rc == 130 and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["does-not-exist"], "does-not-exist"),
        (["MODEL", "--max-concurrent", "0"], "--max-concurrent"),
        (["MODEL", "--ctx", "100000"], "context"),
        (["MODEL", "--port", "70000"], "--port"),
    ],
)
def test_bad_command_line_exit_2(model_dir: Path, args: list[str], message: str) -> None:
    args = [str(model_dir) if a == "MODEL" else a for a in args]
    p = subprocess.run(
        [sys.executable, "-m", "vtpu_cli.serve", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr


# ------------------------------------------------------------------ engine units (a stub backend)


FAIL = 7  # a prompt starting with this token makes the stub model raise


class ByteBackend:
    """A test double: token t < 256 is byte t; the 'model' always predicts the scripted next token."""

    model_id = "stub"
    ctx = 64
    vocab_size = 257
    eos_ids = frozenset({256})

    def __init__(self, script: Sequence[int]) -> None:
        self.script = list(script)

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def encode_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        return self.encode("".join(m["content"] for m in messages))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def new_state(self) -> list[int]:
        return [0]

    def _logits(self, n: int) -> np.ndarray:
        out = np.zeros(self.vocab_size)
        out[self.script[min(n, len(self.script) - 1)]] = 1.0
        return out

    def forward(self, states: Sequence[list[int]], tokens: Sequence[Sequence[int]]) -> np.ndarray:
        if any(t[0] == FAIL for t in tokens):
            raise RuntimeError("stub failure")
        for s in states:  # s[0]: passes so far; pass k (the prompt is one chunk) predicts script[k]
            s[0] += 1
        return np.stack([self._logits(s[0] - 1) for s in states])

    def score(self, state: list[int], tokens: Sequence[int]) -> np.ndarray:
        rows = [self.forward([state], [[t]])[0] for t in tokens]
        return np.stack(rows)

    def token_bytes(self, token: int) -> bytes:
        return bytes([token]) if token < 256 else b""

    def release(self, state: list[int]) -> None:
        pass

    def state_bytes(self) -> int:
        return 8


def run_engine(script: Sequence[int], params: SamplingParams, prompts: Sequence[int] = (65,)) -> list[Any]:
    """Events of one request per prompt token (submitted together) on a stub-backed engine."""
    engine = Engine(ByteBackend(script), max_concurrent=2)
    engine.start()

    async def go() -> list[Any]:
        loop = asyncio.get_running_loop()
        reqs = [engine.submit([p], params, loop) for p in prompts]
        return [[ev async for ev in req.stream()] for req in reqs]

    try:
        out = asyncio.run(asyncio.wait_for(go(), 10))
        return out[0] if len(prompts) == 1 else out
    finally:
        engine.stop()


def test_engine_holds_back_partial_utf8_and_stop_prefixes() -> None:
    euro = list("€".encode())  # three bytes: no piece may be sent before the last one arrives
    script = [*euro, ord("a"), ord("S"), ord("T"), ord("b"), 256]
    events = run_engine(script, SamplingParams(max_tokens=20, temperature=0, stop=("STOP",)))
    assert [e.text for e in events if e.text] == ["€", "a", "STb"]  # "ST" waited: it might have begun "STOP"
    assert events[-1].finish_reason == "stop" and events[-1].completion_tokens == len(script)
    events = run_engine(script, SamplingParams(max_tokens=20, temperature=0, stop=("Tb",)))
    assert "".join(e.text for e in events) == "€aS" and events[-1].finish_reason == "stop"
    events = run_engine(script, SamplingParams(max_tokens=4, temperature=0))
    assert "".join(e.text for e in events) == "€a" and events[-1].finish_reason == "length"


PIECES = [*b"abSTOP", 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xFF, 256]  # letters, UTF-8 parts, junk, EOS


@given(
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=24),
    st.lists(st.text(alphabet="abSTOP", min_size=1, max_size=3), max_size=2),
    st.integers(1, 24),
)
def test_engine_stream_is_the_answer_cut_at_the_first_stop(
    script: list[int], stops: list[str], limit: int
) -> None:
    """Whatever bytes the model emits, the streamed pieces add up to the decoded answer cut before the first
    stop string (or at EOS / max_tokens), with the right finish_reason."""
    limit = min(limit, len(script))
    gen = script[:limit]
    eos = 256 in gen
    if eos:
        gen = gen[: gen.index(256)]
    text = bytes(gen).decode("utf-8", errors="replace")
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    want, reason = (text[: min(hits)], "stop") if hits else (text, "stop" if eos else "length")
    events = run_engine(script, SamplingParams(max_tokens=limit, temperature=0, stop=tuple(stops)))
    assert "".join(e.text for e in events) == want
    assert events[-1].finish_reason == reason
    assert all(e.finish_reason is None for e in events[:-1])


# ------------------------------------------------------------------ request validation


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "model",
        "prompt",
        "messages",
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "stream",
        "n",
        "echo",
        "stream_options",
        "logprobs",
        "top_k",
        "user",
    ]
)


@given(st.dictionaries(FIELDS, JSON, max_size=6), st.booleans())
def test_parsers_accept_or_reject_cleanly(body: dict[str, Any], chat: bool) -> None:
    body.setdefault("model", "m")
    try:
        req = (parse_chat if chat else parse_completion)(body, "m")
    except ApiError as err:
        assert err.status == 400 and err.body()["error"]["message"]
        return
    assert req.model == "m" and (req.max_tokens is None or req.max_tokens >= 1 or req.echo)
    assert req.logprobs is None or 0 <= req.logprobs <= 20
    assert 0 <= req.temperature <= 2 and 0 <= req.top_p <= 1 and len(req.stop) <= 4


def test_engine_logprobs_ties_stops_and_failures() -> None:
    """Alternatives tie to the lower id; a stop string drops the entries of the tokens it cuts off; a
    scoring request whose backend call fails ends alone (the plain request beside it is answered)."""
    from vtpu_cli.serve.engine import token_logprob

    assert [t for t, _ in token_logprob(np.zeros(300), 0, 3).top] == [0, 1, 2]
    x = np.zeros(1000)
    x[::7] = 1.0
    assert [t for t, _ in token_logprob(x, 7, 2).top] == [0, 7]
    script = [ord(c) for c in "abXYcd"] + [256]
    events = run_engine(script, SamplingParams(max_tokens=10, temperature=0, stop=("XY",), logprobs=0))
    assert "".join(e.text for e in events) == "ab" and events[-1].finish_reason == "stop"
    assert [lp.token for e in events for lp in e.logprobs] == [ord("a"), ord("b")]
    engine = Engine(ByteBackend([ord("o"), ord("k"), 256]), max_concurrent=2)
    engine.start()

    async def go() -> list[list[Any]]:
        loop = asyncio.get_running_loop()
        scoring = SamplingParams(max_tokens=5, temperature=0, logprobs=1, prompt_logprobs=True)
        reqs = [
            engine.submit([FAIL], scoring, loop),
            engine.submit([65], SamplingParams(max_tokens=5, temperature=0), loop),
            engine.submit([66, 67], scoring, loop),
        ]
        return [[ev async for ev in r.stream()] for r in reqs]

    try:
        failed, plain, scored = asyncio.run(asyncio.wait_for(go(), 10))
    finally:
        engine.stop()
    assert failed[-1].finish_reason == "error" and "stub failure" in failed[-1].error
    assert "".join(e.text for e in plain) == "ok" and plain[-1].finish_reason == "stop"
    prompt_lp = next(e.prompt_logprobs for e in scored if e.prompt_logprobs is not None)
    assert prompt_lp[0] is None and prompt_lp[1].token == 67 and len(prompt_lp[1].top) == 1
    assert scored[-1].finish_reason == "stop"


def test_engine_model_error_fails_only_that_pass() -> None:
    bad, good = run_engine(
        [ord("o"), ord("k"), 256], SamplingParams(max_tokens=5, temperature=0), prompts=[FAIL, 65]
    )
    # both shared the failing pass; each gets an error event, and the engine goes on serving
    assert bad[-1].finish_reason == "error" and "stub failure" in bad[-1].error
    assert good[-1].finish_reason == "error"
    ok = run_engine([ord("o"), ord("k"), 256], SamplingParams(max_tokens=5, temperature=0))
    assert "".join(e.text for e in ok) == "ok" and ok[-1].finish_reason == "stop"


def test_chat_rendering() -> None:
    from vtpu_cli.serve.backend import ChatTemplateError, render_simple_chat, render_template

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert render_simple_chat(messages) == "System: Be brief.\n\nUser: Hi\n\nAssistant:"
    tpl = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"
    assert render_template(tpl, messages, bos_token="<s>") == "<system>Be brief.<user>Hi<a>"
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        render_template("{{ raise_exception('roles must alternate') }}", messages)
    with pytest.raises(ChatTemplateError):  # the sandbox refuses attribute tricks
        render_template("{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}", messages)


def test_engine_cancel_frees_waiting_and_active_requests() -> None:
    class Slow(ByteBackend):
        def forward(self, states: Sequence[list[int]], tokens: Sequence[Sequence[int]]) -> np.ndarray:
            time.sleep(0.005)
            return super().forward(states, tokens)

    engine = Engine(Slow([ord("a")] * 60), max_concurrent=1)
    engine.start()

    async def go() -> tuple[list[Any], list[Any]]:
        loop = asyncio.get_running_loop()
        params = SamplingParams(max_tokens=60, temperature=0)
        running, queued = engine.submit([65], params, loop), engine.submit([66], params, loop)
        first = await running.events.get()  # `running` holds the only slot; `queued` waits
        queued.cancel()
        q_events = [ev async for ev in queued.stream()]
        assert engine.stats.active == 1
        running.cancel()
        r_events = [first, *[ev async for ev in running.stream()]]
        return q_events, r_events

    try:
        q_events, r_events = asyncio.run(asyncio.wait_for(go(), 10))
    finally:
        engine.stop()
    assert [e.finish_reason for e in q_events] == ["cancelled"] and q_events[0].completion_tokens == 0
    assert r_events[-1].finish_reason == "cancelled" and r_events[-1].completion_tokens < 60
    assert engine.stats.cancelled == 2 and engine.stats.active == 0 and engine._pending == 0


def test_backends_implement_the_protocol(model: Any) -> None:
    from vtpu_cli.serve.backend import Backend
    from vtpu_cli.serve.refbackend import ReferenceBackend

    assert isinstance(ReferenceBackend(model, ctx=CTX), Backend)
    assert isinstance(ByteBackend([256]), Backend)  # the test double keeps the same contract


def test_vtpu_serve_is_a_cli_command(tmp_path):
    import contextlib
    import io

    from vtpu_cli.cli.main import cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli(["serve", str(tmp_path / "no-such-model"), "--port", "0"])
    assert rc == 2 and "no-such-model" in err.getvalue()


# ------------------------------------------------------------------ the compiled model behind the server
def test_compiled_backend_matches_the_compiled_model_alone(model: Any, tmp_path, monkeypatch) -> None:
    """States are independent and pooled: interleaved sequences give what each gives alone."""
    from vtpu_cli.models.compiled import CompiledModel
    from vtpu_cli.serve.backend import Backend
    from vtpu_cli.serve.compiledbackend import CompiledBackend

    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path / "cache"))
    be = CompiledBackend(model, ctx=CTX, engine="interp")
    assert isinstance(be, Backend)
    a, b = be.new_state(), be.new_state()
    pa, pb = be.encode("hello"), be.encode("the cat")
    la, lb = be.forward([a, b], [pa, pb])
    ta, tb = [int(np.argmax(la))], [int(np.argmax(lb))]
    for _ in range(3):
        la, lb = be.forward([a, b], [[ta[-1]], [tb[-1]]])
        ta.append(int(np.argmax(la)))
        tb.append(int(np.argmax(lb)))
    alone = CompiledModel(model, ctx=CTX, engine="interp", weights=be.weights)
    want = [int(np.argmax(alone.forward(pa)[-1]))]
    for _ in range(3):
        want.append(int(np.argmax(alone.forward([want[-1]])[-1])))
    assert ta == want
    be.release(a)
    assert be.new_state() is a and a.pos == 0  # a released state is reset and reused
    # score: every row's logits (the scoring variants), those of the step run token by token
    rows = be.score(a, pa + [ta[0]])
    alone.reset()
    np.testing.assert_array_equal(rows, np.stack([alone.forward([t])[-1] for t in pa + [ta[0]]]))


def test_server_on_the_compiled_model(model_dir: Path, tmp_path) -> None:
    """The real server with the compiled step on the interpreter: a streamed and a plain completion."""
    os.environ.setdefault("VTPU_CACHE_DIR", str(tmp_path / "cache"))
    srv = Server(model_dir, "--engine", "interp", "--max-concurrent", "2")
    try:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        r = c.completions.create(model=MODEL_ID, prompt="hello", max_tokens=4, temperature=0)
        assert r.usage.completion_tokens >= 1 and r.choices[0].finish_reason in ("length", "stop")
        parts = c.completions.create(model=MODEL_ID, prompt="hello", max_tokens=4, temperature=0, stream=True)
        assert "".join(p.choices[0].text for p in parts) == r.choices[0].text
        e = c.completions.create(
            model=MODEL_ID, prompt="hello there", max_tokens=1, temperature=0, echo=True, logprobs=1
        )
        lps = e.choices[0].logprobs.token_logprobs
        n = len(load_model(model_dir).tokenizer.encode("hello there"))
        assert len(lps) == n + e.usage.completion_tokens and lps[0] is None
        assert all(v <= 0 and np.isfinite(v) for v in lps[1:])
    finally:
        rc, out, err = srv.stop()
    assert rc == 0 and "interp engine, compiled step" in out, err
