"""The BitNet model run through the toolchain (phextcc-compiled step on the engines) against the float64
reference, plus the generate/perplexity commands.

Tolerance: the compiled step computes in float32 and the reference in float64, with the same int8
activation quantisation. Logits agree to 1e-3 (measured ~1e-5) until an activation lands within float32
rounding of an int8 rounding tie (|frac - 0.5| below ~1e-6), where the two legitimately pick
neighbouring int8 values; on the test model and prompt below that first happens after 29 greedy steps,
and greedy tokens stay identical for the 32 steps checked.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

from vtpu_cli.models import ModelError, Reference, load_model  # noqa: E402
from vtpu_cli.models.compiled import CompiledModel, convert_weights, tile_layout  # noqa: E402
from vtpu_cli.models.generate import generate_command, perplexity_command  # noqa: E402
from vtpu_cli.models.synth import SynthSpec, write_all  # noqa: E402
from vtpu_cli.models.ternary import TernaryMatrix, pack_ternary  # noqa: E402

CTX = 64
PROMPT = "The"
TOL = 1e-3


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("bitnet"), SynthSpec())


def test_tile_layout_is_the_compilers_packing():
    from vtpu_cli.compiler.tensors import pack_ternary_tiles

    rng = np.random.default_rng(3)
    for rows, cols in ((32, 64), (48, 20), (17, 33)):
        w = rng.integers(-1, 2, size=(rows, cols)).astype(np.int8)
        m = TernaryMatrix("w", rows, cols, pack_ternary(w), 1.0)
        assert tile_layout(m).tobytes() == pack_ternary_tiles(w.T)


def test_every_format_gives_the_same_scrolls(paths):
    """The compiled step sees only scroll bytes: all four formats convert to identical scrolls, so one
    compiled run stands for all of them."""
    conv = {k: convert_weights(load_model(p)) for k, p in paths.items()}
    first = conv.pop("hf")
    for name, c in conv.items():
        assert c.keys() == first.keys(), name
        for coord, buf in c.items():
            assert buf.tobytes() == first[coord].tobytes(), (name, coord)


def test_layout_cache_round_trip(paths, tmp_path):
    from vtpu_cli.models.cache import cached_weights

    model = load_model(paths["tq1_0"])
    first, hit1 = cached_weights(model, tmp_path)
    second, hit2 = cached_weights(model, tmp_path)
    assert (hit1, hit2) == (False, True)
    want = convert_weights(model)
    assert second.keys() == want.keys()
    assert all(second[c].tobytes() == want[c].tobytes() for c in want)
    assert isinstance(second[next(iter(want))], np.memmap)


def _greedy_compare(model, engine: str, steps: int) -> tuple[list[int], list[float], set[str]]:
    cm = CompiledModel(model, ctx=CTX, engine=engine)
    ref = Reference(model, ctx=CTX, head="q8")
    ids = model.tokenizer.encode(PROMPT)
    lc, lr = cm.forward(ids)[-1], ref.forward(ids)[-1]
    toks, diffs = [], []
    for _ in range(steps):
        diffs.append(float(np.abs(lc - lr).max()))
        assert int(lc.argmax()) == int(lr.argmax()) == cm.runner.token()
        tok = int(lr.argmax())
        toks.append(tok)
        lc, lr = cm.forward([tok])[-1], ref.forward([tok])[-1]
    return toks, diffs, cm.engines_used


def test_interpreter_matches_reference(paths):
    model = load_model(paths["hf"])
    toks, diffs, used = _greedy_compare(model, "interp", 6)
    assert used == {"interp"}
    assert max(diffs) < TOL
    assert len(set(toks)) > 1


@pytest.mark.slow  # the first run generates native code for the step program (minutes; cached after)
@pytest.mark.parametrize("fmt", ["hf", "tq2_0", "tq1_0", "i2_s"])
def test_jit_greedy_32_steps_every_format(paths, fmt):
    model = load_model(paths[fmt])
    toks, diffs, used = _greedy_compare(model, "jit", 32)
    assert used == {"jit"}
    assert max(diffs[:24]) < TOL


LONG_PROMPT = "The quick brown fox jumps over the lazy dog"


def _kv_rows(cm, n: int) -> np.ndarray:
    """The first ``n`` cache rows of every layer (rows past the sequence are never read)."""
    kv = cm.cfg.kv_dim
    k = cm.kc.view(np.float32).reshape(cm.cfg.layers, cm.ctx, kv)[:, :n]
    v = cm.vc.view(np.float32).reshape(cm.cfg.layers, cm.ctx, kv)[:, :n]
    return np.concatenate([k, v])


@pytest.mark.parametrize(
    ("chunk", "ctx"),
    [
        (4, CTX),  # full chunks and one padded chunk (11 tokens = 4 + 4 + 3 and a pad row)
        # a remainder of 3 < T/2 (and a padded chunk would pass the context): token by token
        pytest.param(8, 14, marks=pytest.mark.slow),
    ],
)
def test_batched_prefill_interp_equals_token_by_token_and_reference(paths, chunk, ctx):
    """Prefill in T-token chunks gives bit-identical logits and KV rows to the decode step run token by
    token, the reference's logits, and the same greedy continuation."""
    model = load_model(paths["tq2_0"])
    ids = model.tokenizer.encode(LONG_PROMPT)[:11]
    batched = CompiledModel(model, ctx=ctx, engine="interp", prefill=chunk)
    single = CompiledModel(model, ctx=ctx, engine="interp", prefill=1)
    lb, ls = batched.forward(ids)[-1], single.forward(ids)[-1]
    assert sorted(batched.runners) == [1, chunk] and sorted(single.runners) == [1]
    assert batched.pos == single.pos == len(ids)
    assert np.array_equal(lb, ls)
    assert np.array_equal(_kv_rows(batched, len(ids)), _kv_rows(single, len(ids)))
    ref = Reference(model, ctx=ctx, head="q8")
    lr = ref.forward(ids)[-1]
    assert float(np.abs(lb - lr).max()) < TOL
    assert batched.runner.token() == int(lr.argmax())
    for _ in range(3):  # decode after a prefill reads the cache the chunks wrote
        tok = int(lr.argmax())
        lb, lr = batched.forward([tok])[-1], ref.forward([tok])[-1]
        assert float(np.abs(lb - lr).max()) < TOL
        assert batched.runner.token() == int(lr.argmax())


def test_prefill_plan(paths):
    model = load_model(paths["tq2_0"])
    cm = CompiledModel(model, ctx=40, engine="interp", prefill=16)
    assert cm.plan(1) == [(1, 1)]
    assert cm.plan(7) == [(1, 1)] * 7  # below T/2: token by token, the prefill variant is never compiled
    assert cm.plan(8) == [(8, 16)]  # one chunk padded to 16
    assert cm.plan(37) == [(16, 16), (16, 16)] + [(1, 1)] * 5
    assert cm.plan(30, pos=10) == [(16, 16)] + [(1, 1)] * 14  # 26 + 16 > 40
    assert cm.plan_sizes(30, pos=10) == {1, 16}
    assert CompiledModel(model, ctx=40, engine="interp", prefill=1).plan(5) == [(1, 1)] * 5
    two = CompiledModel(model, ctx=200, engine="interp")  # default sizes 64 and 16
    assert two.prefill_sizes == (64, 16)
    assert two.plan(150) == [(64, 64), (64, 64), (16, 16)] + [(1, 1)] * 6
    assert two.plan(140) == [(64, 64), (64, 64), (12, 16)]
    assert two.plan(100) == [(64, 64), (36, 64)]
    assert two.plan(74, pos=120) == [(64, 64), (10, 16)]
    assert two.plan(20, pos=180) == [(16, 16)] + [(1, 1)] * 4
    assert sorted(cm.runners) == sorted(two.runners) == [1]  # planning compiles nothing


def test_prefill_rejects_overflow(paths):
    model = load_model(paths["tq2_0"])
    cm = CompiledModel(model, ctx=8, engine="interp", prefill=4)
    with pytest.raises(ModelError, match="context of 8 tokens exceeded"):
        cm.forward(list(range(2, 11)))
    with pytest.raises(ModelError, match="at least 1"):
        CompiledModel(model, ctx=8, engine="interp", prefill=0)
    with pytest.raises(ModelError, match="at least 1"):
        CompiledModel(model, ctx=8, engine="interp", prefill=())


@pytest.mark.slow  # native code for the decode and the prefill variant (cached after the first run)
@pytest.mark.parametrize("fmt", ["tq2_0", "i2_s"])
def test_jit_batched_prefill_greedy_32_steps(paths, fmt):
    """JIT: an 11-token prompt prefilled in a padded 16-token chunk, then 32 greedy steps. Logits are
    bit-identical to the token-by-token compiled run at every step; against the float64 reference they
    agree to TOL until the first int8 rounding tie of this dyadic test model (step 13 here, see the
    module docstring), and the greedy tokens for 24 steps (the reference's token 25 differs after ties)."""
    model = load_model(paths[fmt])
    ids = model.tokenizer.encode(LONG_PROMPT)[:11]
    cm = CompiledModel(model, ctx=CTX, engine="jit", prefill=16)
    one = CompiledModel(model, ctx=CTX, engine="jit", prefill=1)
    ref = Reference(model, ctx=CTX, head="q8")
    lc, l1, lr = cm.forward(ids)[-1], one.forward(ids)[-1], ref.forward(ids)[-1]
    assert cm.engines_used == {"jit"} and sorted(cm.runners) == [1, 16]
    for i in range(32):
        assert np.array_equal(lc, l1), i
        if i < 12:
            assert float(np.abs(lc - lr).max()) < TOL, i
        assert cm.runner.token() == one.runner.token()
        if i < 24:
            assert cm.runner.token() == int(lr.argmax()), i
        tok = int(lr.argmax())
        lc, l1, lr = cm.forward([tok])[-1], one.forward([tok])[-1], ref.forward([tok])[-1]


def test_generate_command_greedy_matches_reference(paths, capsys):
    model = load_model(paths["hf"])
    want = Reference(model, ctx=CTX, head="q8").generate(model.tokenizer.encode(PROMPT), 4)
    rc = generate_command(paths["hf"], prompt=PROMPT, n=4, temp=0.0, ctx=CTX, engine="interp", json_out=True)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == want
    assert out["stats"]["prompt_tokens"] == len(model.tokenizer.encode(PROMPT))
    assert out["stats"]["engine"] == "interp" and out["stats"]["peak_rss_bytes"] > 0


def test_a_jit_fallback_is_said_once_and_not_retried(paths, capsys, monkeypatch):
    """When the JIT cannot run the step (say its compile ran over the limit), generate says so on stderr
    and the interpreter runs every token -- without attempting the native compile again per token."""
    from vtpu_cli.engines import select

    asked: list[str] = []
    real = select.open_local_engine

    def open_local(program, memory, o):
        asked.append(o.engine)
        if o.engine == "jit":
            return select.Fallback(real(program, memory, replace(o, engine="interp")), "a test's reason")
        return real(program, memory, o)

    monkeypatch.setattr(select, "open_local_engine", open_local)
    model = load_model(paths["hf"])
    want = Reference(model, ctx=CTX, head="q8").generate(model.tokenizer.encode(PROMPT), 4)
    rc = generate_command(paths["hf"], prompt=PROMPT, n=4, temp=0.0, ctx=CTX, engine="jit", json_out=True)
    assert rc == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["tokens"] == want
    assert cap.err.count("note: running on the interpreter: a test's reason") == 1
    assert 1 <= asked.count("jit") <= 3  # once per compiled variant (decode, prefill sizes), not per token
    assert asked.count("interp") >= 4  # then a fresh interpreter per run


def test_generate_errors_exit_2(paths, tmp_path, capsys):
    assert generate_command(tmp_path / "missing.gguf", prompt="x", n=1, engine="interp") == 2
    assert "missing.gguf" in capsys.readouterr().err
    long = "the " * 200
    assert generate_command(paths["hf"], prompt=long, n=1, ctx=16, engine="interp") == 2
    assert "longer than the context" in capsys.readouterr().err
    assert generate_command(paths["hf"], prompt="x", n=1, sentrons=0, engine="interp") == 2
    assert "--sentrons" in capsys.readouterr().err


def test_scoring_writes_every_rows_logits_in_chunks(paths):
    """``forward(ids, all_logits=True)`` runs the scoring variants (T-token chunks whose head covers all
    T rows): the logits of the decode step run token by token, bit for bit, from 3 runs instead of 11."""
    model = load_model(paths["tq2_0"])
    ids = model.tokenizer.encode(LONG_PROMPT)[:11]
    batched = CompiledModel(model, ctx=CTX, engine="interp", prefill=4)
    single = CompiledModel(model, ctx=CTX, engine="interp", prefill=1)
    lb = batched.forward(ids, all_logits=True)
    ls = np.stack([single.forward([t])[-1] for t in ids])
    assert lb.shape == (11, model.config.vocab)
    assert np.array_equal(lb, ls)
    assert sorted(batched.scorers) == [4] and batched.scorers[4].runs == 3  # 4 + 4 + 3 (one pad row)
    assert batched.runners[1].runs == 0 and batched.pos == 11
    tok = int(lb[-1].argmax())  # decode goes on from the cache the scoring runs wrote
    assert np.array_equal(batched.forward([tok])[-1], single.forward([tok])[-1])
    # two sentrons: the head's rows split by columns (matmul_q8 shard=cols with M = 4), the same bits
    tp = CompiledModel(model, ctx=CTX, engine="interp", prefill=4, sentrons=2)
    assert np.array_equal(tp.forward(ids, all_logits=True), ls)


@pytest.mark.parametrize("prompt", ["The cat", LONG_PROMPT])
def test_perplexity_command(paths, tmp_path, capsys, prompt):
    text = tmp_path / "t.txt"
    text.write_text(prompt, encoding="utf-8")
    model = load_model(paths["hf"])
    ids = model.tokenizer.encode(prompt)
    logits = Reference(model, ctx=CTX, head="q8").forward(ids)
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    want = float(np.exp(np.mean(lse[:-1] - logits[np.arange(len(ids) - 1), ids[1:]])))
    assert perplexity_command(paths["hf"], text, ctx=CTX, engine="interp", json_out=True) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == len(ids) - 1
    assert abs(out["perplexity"] - want) < 1e-3 * want


@pytest.mark.slow  # ~45 s on the interpreter
def test_perplexity_second_half_is_llama_perplexitys_method(paths, tmp_path, capsys):
    """--scoring second-half: chunks of ctx tokens (BOS replaces each chunk's first token), logits at
    positions ctx/2 .. ctx-2 scored; checked against the reference doing exactly that by hand."""
    ctx = 8
    text = tmp_path / "t.txt"
    text.write_text(LONG_PROMPT, encoding="utf-8")
    model = load_model(paths["tq2_0"])
    ids = model.tokenizer.encode(LONG_PROMPT)
    assert ids[0] == model.config.bos_id and len(ids) >= 2 * ctx
    ref = Reference(model, ctx=ctx, head="q8")
    nll = []
    for c0 in range(0, len(ids) // ctx * ctx, ctx):
        chunk = [model.config.bos_id, *ids[c0 + 1 : c0 + ctx]]
        ref.reset()
        logits = ref.forward(chunk)
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        nll += [lse[j] - logits[j, chunk[j + 1]] for j in range(ctx // 2, ctx - 1)]
    want = float(np.exp(np.mean(nll)))
    rc = perplexity_command(
        paths["tq2_0"], text, ctx=ctx, engine="interp", json_out=True, scoring="second-half"
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == len(nll) == len(ids) // ctx * 3
    assert out["scoring"] == "second-half"
    assert abs(out["perplexity"] - want) < 1e-4 * want
    short = tmp_path / "s.txt"
    short.write_text("The cat", encoding="utf-8")
    assert perplexity_command(paths["tq2_0"], short, ctx=ctx, engine="interp", scoring="second-half") == 2
    assert "at least 2 x the context" in capsys.readouterr().err


def test_python_model_api_matches_the_reference(paths):
    import vtpu

    m = vtpu.Model.load(paths["tq2_0"], ctx=CTX, engine="interp")
    ids = m.tokenizer.encode(PROMPT)
    got = m.generate_ids(ids, 6, stop_at_eos=False)
    ref = Reference(load_model(paths["tq2_0"]), ctx=CTX, head="q8")
    logits = ref.forward(ids)[-1]
    want = []
    for _ in range(6):
        want.append(int(np.argmax(logits)))
        logits = ref.forward([want[-1]])[-1]
    assert got == want
    assert m.generate_ids(ids, 6, stop_at_eos=False) == got  # a new sequence each call
    assert isinstance(m.generate(PROMPT, 4), str)
    with pytest.raises(vtpu.ModelLoadError, match="no-such"):
        vtpu.Model.load(paths["tq2_0"].parent / "no-such.gguf")
    # two sentrons (tensor parallel): the same tokens
    m2 = vtpu.Model.load(paths["tq2_0"], ctx=CTX, engine="interp", sentrons=2)
    assert m2.compiled.sentrons == 2
    assert m2.generate_ids(ids, 6, stop_at_eos=False) == got
    with pytest.raises(vtpu.VtpuError, match="sentrons must be"):
        vtpu.Model.load(paths["tq2_0"], sentrons=0)


def test_python_model_api_scores_text(paths):
    """``Model.logprobs``/``perplexity``: the log-softmax of the decode step's logits run token by token
    (to float64 rounding), and near the float64 reference's (the compiled step's float32 arithmetic and
    int8 activations: one position of this prompt moves by ~7e-3), nan first."""
    import vtpu

    def log_softmax_at(logits, ids):
        x = np.asarray(logits, np.float64)
        lse = np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
        return x[np.arange(len(ids) - 1), ids[1:]] - lse[:-1]

    m = vtpu.Model.load(paths["tq2_0"], ctx=CTX, engine="interp")
    ids = m.tokenizer.encode(LONG_PROMPT)[:12]  # (chunks of 16: one padded run, 12 scored rows)
    lp = m.logprobs(ids)
    assert np.isnan(lp[0]) and lp.shape == (len(ids),)
    assert len(m.logprobs("The")) == len(m.tokenizer.encode("The"))  # text works too
    single = CompiledModel(load_model(paths["tq2_0"]), ctx=CTX, engine="interp", prefill=1)
    steps = np.stack([single.forward([t])[-1] for t in ids])
    np.testing.assert_allclose(lp[1:], log_softmax_at(steps, ids), rtol=0, atol=1e-9)
    ref = Reference(load_model(paths["tq2_0"]), ctx=CTX, head="q8").forward(ids)
    assert float(np.abs(lp[1:] - log_softmax_at(ref, ids)).max()) < 2e-2
    assert m.perplexity(ids) == pytest.approx(float(np.exp(-lp[1:].mean())), rel=1e-9)  # a new sequence
    with pytest.raises(vtpu.VtpuError, match="do not fit the context"):
        m.logprobs([1] * (CTX + 1))
    with pytest.raises(vtpu.VtpuError, match="token ids must be"):
        m.logprobs([m.config.vocab])


def test_settle_collects_what_an_engine_start_leaves_in_cycles():
    """``generate`` collects cyclic garbage before the first run (a JIT compile leaves its llvmlite IR
    module, ~140 MiB at the 2B-4T shape, for a full collection that a short run never reaches)."""
    import gc
    import weakref

    from vtpu_cli.models.generate import settle

    class Node:
        pass

    was = gc.isenabled()
    gc.disable()  # only settle() may collect
    try:
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        ref = weakref.ref(a)
        del a, b
        assert ref() is not None  # a cycle: reference counting alone never frees it
        settle()
        assert ref() is None
    finally:
        if was:
            gc.enable()
