"""BitNet model formats, the vtpu ternary layout, tokenizers and the float64 reference."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

import gguf  # noqa: E402

from vtpu_cli.models import BitNetModel, ModelError, Reference, Sampler, TernaryMatrix, load_model  # noqa: E402
from vtpu_cli.models.formats import (  # noqa: E402
    hf_decode,
    hf_pack,
    i2_s_decode,
    i2_s_encode,
    q8_0_decode_rows,
    q8_0_encode,
    tq1_0_decode,
    tq1_0_encode,
    tq2_0_decode,
    tq2_0_encode,
)
from vtpu_cli.models.gguf_file import read_gguf  # noqa: E402
from vtpu_cli.models.load_hf import STTensor, _absmean_ternarize  # noqa: E402
from vtpu_cli.models.reference import quantize_activations, rope  # noqa: E402
from vtpu_cli.models.synth import (  # noqa: E402
    SynthSpec,
    random_weights,
    train_tokenizer,
    write_all,
    write_gguf_tq,
    write_hf,
)
from vtpu_cli.models.ternary import has_code3, pack_codes, pack_ternary, unpack_codes, unpack_ternary  # noqa: E402
from vtpu_cli.models.tokenizer import tokenizer_from_gguf  # noqa: E402

FORMATS = ("hf", "tq2_0", "tq1_0", "i2_s")
PROMPT = "Hello world! The quick brown fox"


def ternary(draw_shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1, 2, size=draw_shape).astype(np.int8)


# ------------------------------------------------------------------ the vtpu layout


@given(st.integers(1, 6), st.integers(1, 41), st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip(rows: int, cols: int, seed: int) -> None:
    w = ternary((rows, cols), seed)
    packed = pack_ternary(w)
    assert packed.shape == (rows, (cols + 3) // 4) and packed.dtype == np.uint8
    assert np.array_equal(unpack_ternary(packed, cols), w)
    assert not has_code3(packed)
    # padding fields hold code 1 (weight 0)
    tail = unpack_codes(packed, packed.shape[1] * 4)[:, cols:]
    assert np.all(tail == 1)


def test_pack_bit_positions() -> None:
    # column 4k+i sits in bits 2i..2i+1 of byte k, code = w + 1
    w = np.array([[-1, 0, 1, 1, 1]], dtype=np.int8)
    packed = pack_ternary(w)
    assert packed.tolist() == [[0 | 1 << 2 | 2 << 4 | 2 << 6, 2 | 1 << 2 | 1 << 4 | 1 << 6]]
    assert has_code3(np.array([0b00110000], dtype=np.uint8))
    assert pack_codes(np.array([[2, 2, 2, 2]])).tolist() == [[0xAA]]


# ------------------------------------------------------------------ source formats


@given(st.integers(1, 5), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_hf_packing_round_trip(quarter: int, cols: int, seed: int) -> None:
    w = ternary((4 * quarter, cols), seed)
    m = hf_decode(hf_pack(w), 0.5, "w", "mem")
    assert m.shape == w.shape and np.array_equal(m.ternary(), w)


def test_hf_packing_field_order() -> None:
    # field i (LSB first) of packed row r holds original row i*(out/4) + r
    out, q = 12, 3
    for i in range(4):
        for r in range(q):
            w = np.zeros((out, 2), dtype=np.int8)
            w[i * q + r, 0] = 1
            packed = hf_pack(w)
            expect = np.full((q, 2), 0x55, dtype=np.uint8)  # all codes 1
            expect[r, 0] = 0x55 ^ (1 << 2 * i) ^ (2 << 2 * i)
            assert np.array_equal(packed, expect), (i, r)
    bad = np.full((1, 4), 0xFF, dtype=np.uint8)
    with pytest.raises(ModelError, match="code 3"):
        hf_decode(bad, 1.0, "model.layers.0.mlp.up_proj.weight", "x.safetensors")


@pytest.mark.parametrize("qtype", ["TQ1_0", "TQ2_0"])
@given(rows=st.integers(1, 3), blocks=st.integers(1, 2), seed=st.integers(0, 2**32 - 1))
def test_tq_round_trip_and_agrees_with_gguf_package(qtype: str, rows: int, blocks: int, seed: int) -> None:
    w = ternary((rows, 256 * blocks), seed)
    scale = 0.04296875
    enc, dec = (tq1_0_encode, tq1_0_decode) if qtype == "TQ1_0" else (tq2_0_encode, tq2_0_decode)
    data = enc(w, scale)
    assert data.shape == (rows, blocks * (54 if qtype == "TQ1_0" else 66))
    m = dec(data, 256 * blocks, "t", "mem")
    assert np.array_equal(m.ternary(), w) and m.scale == scale
    # independent decoder: llama.cpp's gguf-py
    ref = gguf.quants.dequantize(data, gguf.GGMLQuantizationType[qtype])
    assert np.array_equal(ref, w.astype(np.float32) * np.float32(np.float16(scale)))


def test_tq_mixed_block_scales_rejected_and_zero_blocks() -> None:
    w = ternary((2, 512), 3)
    data = tq2_0_encode(w, 0.25)
    data[1, 66 + 64 : 66 + 66] = np.array([0.5], dtype=np.float16).view(np.uint8)
    with pytest.raises(ModelError, match="blk.3.ffn_up.weight has 2 different block scales"):
        tq2_0_decode(data, 512, "blk.3.ffn_up.weight", "m.gguf")
    data = tq2_0_encode(w, 0.25)
    data[0, 64:66] = 0  # zero block scale: the whole block is zero
    m = tq2_0_decode(data, 512, "t", "m.gguf")
    expect = w.copy()
    expect[0, :256] = 0
    assert np.array_equal(m.ternary(), expect) and m.scale == 0.25


@given(rows=st.integers(1, 4), cols=st.sampled_from([32, 128, 160, 256]), seed=st.integers(0, 2**32 - 1))
def test_i2_s_round_trip(rows: int, cols: int, seed: int) -> None:
    if rows * cols % 128:
        rows = 4
    w = ternary((rows, cols), seed)
    payload = np.frombuffer(i2_s_encode(w, 0.375), dtype=np.uint8)
    assert payload.size == rows * cols // 4 + 32
    m = i2_s_decode(payload, rows, cols, "t", "mem")
    assert np.array_equal(m.ternary(), w) and m.scale == 0.375


def test_i2_s_bit_positions() -> None:
    # weight j of a 128-block: byte j % 32, shifted by 6 - 2*(j // 32); code w + 1; fp32 scale after codes
    for j in (0, 31, 32, 77, 127):
        w = np.zeros((1, 128), dtype=np.int8)
        w[0, j] = 1
        payload = np.frombuffer(i2_s_encode(w, 2.0), dtype=np.uint8)
        shift = 6 - 2 * (j // 32)
        expect = np.full(32, 0x55, dtype=np.uint8)
        expect[j % 32] = (0x55 & ~(3 << shift)) | (2 << shift)
        assert np.array_equal(payload[:32], expect), j
        assert payload[32:36].view("<f4")[0] == 2.0


# The decoders move 2-bit fields with word-wide bit transposes (formats.transpose_fields); these
# references decode by the formats' definitions, field by field, from arbitrary bytes (code 3 and
# zero-scale blocks included), so a wrong shift, mask or byte permutation shows.


def _spec_pack(codes: np.ndarray) -> np.ndarray | None:
    """The vtpu packing of codes by definition, or None when a code is 3 (the decoders refuse it)."""
    return None if np.any(codes == 3) else pack_codes(codes)


def _same_or_refused(decode, expect: np.ndarray | None) -> None:
    if expect is None:
        with pytest.raises(ModelError, match="code 3"):
            decode()
        return
    assert np.array_equal(decode().packed, expect)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), blocks=st.integers(1, 3), seed=st.integers(0, 2**32 - 1), code3=st.booleans())
def test_tq2_0_fields_by_definition(rows: int, blocks: int, seed: int, code3: bool) -> None:
    rng = np.random.default_rng(seed)
    cols = 256 * blocks
    data = rng.integers(0, 256 if code3 else 1, (rows, blocks, 66), dtype=np.uint8)
    if not code3:  # codes 0..2 only: each field drawn apart
        f = rng.integers(0, 3, (rows, blocks, 64, 4), dtype=np.uint8)
        data[:, :, :64] = f[..., 0] | f[..., 1] << 2 | f[..., 2] << 4 | f[..., 3] << 6
    zero = rng.random((rows, blocks)) < 0.3
    data[:, :, 64:66] = np.where(zero[..., None], 0, np.array([0.25], np.float16).view(np.uint8))
    e = np.arange(256)
    codes = (data[:, :, 32 * (e // 128) + e % 32] >> (2 * ((e % 128) // 32))).astype(np.uint8) & 3
    codes[zero] = 1
    flat = data.reshape(rows, -1)
    _same_or_refused(lambda: tq2_0_decode(flat, cols, "t", "m.gguf"), _spec_pack(codes.reshape(rows, cols)))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.sampled_from([32, 64, 128, 160, 256, 384, 33]),
    seed=st.integers(0, 2**32 - 1),
)
def test_i2_s_fields_by_definition(rows: int, cols: int, seed: int) -> None:
    if rows * cols % 128:
        rows = 128 // np.gcd(cols, 128)
    rng = np.random.default_rng(seed)
    n = rows * cols
    f = rng.integers(0, 3 + (seed % 5 == 0), (n // 4, 4), dtype=np.uint8)
    body = f[:, 0] | f[:, 1] << 2 | f[:, 2] << 4 | f[:, 3] << 6
    payload = np.concatenate([body.astype(np.uint8), np.zeros(32, np.uint8)])
    payload[n // 4 : n // 4 + 4] = np.array([0.5], "<f4").view(np.uint8)
    j = np.arange(n)
    codes = (payload[(j // 128) * 32 + j % 32] >> (6 - 2 * ((j % 128) // 32))) & 3
    _same_or_refused(
        lambda: i2_s_decode(payload, rows, cols, "t", "mem"), _spec_pack(codes.reshape(rows, cols))
    )


@settings(max_examples=60, deadline=None)
@given(quarter=st.integers(1, 5), cols=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_hf_fields_by_definition(quarter: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 3 + (seed % 5 == 0), (quarter, cols, 4), dtype=np.uint8)
    src = (f[..., 0] | f[..., 1] << 2 | f[..., 2] << 4 | f[..., 3] << 6).astype(np.uint8)
    codes = np.concatenate([(src >> (2 * i)) & 3 for i in range(4)], axis=0)  # row i*quarter + r
    _same_or_refused(lambda: hf_decode(src, 1.0, "w", "x.safetensors"), _spec_pack(codes))


def test_q8_0_decoder_agrees_with_gguf_package() -> None:
    x = np.random.default_rng(5).standard_normal((3, 64)).astype(np.float32)
    data = q8_0_encode(x)
    ours = q8_0_decode_rows(data, 64)
    assert np.array_equal(ours, gguf.quants.dequantize(data, gguf.GGMLQuantizationType.Q8_0))
    assert np.allclose(ours, x, atol=np.abs(x).max() / 100)


# ------------------------------------------------------------------ whole models


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("bitnet"))


@pytest.fixture(scope="module")
def models(files: dict[str, Path]) -> dict:
    return {name: load_model(path) for name, path in files.items()}


def test_all_formats_load_identical_weights(models: dict) -> None:
    base = models["hf"]
    assert base.config.hidden == 256 and base.config.kv_heads == 2 and base.config.vocab == 300
    for name in FORMATS[1:]:
        m = models[name]
        assert m.config == base.config, name
        for a, b in zip(base.ternary_matrices(), m.ternary_matrices(), strict=True):
            assert a.shape == b.shape and a.scale == b.scale and np.array_equal(a.packed, b.packed), (
                name,
                b.name,
            )
        for la, lb in zip(base.layers, m.layers, strict=True):
            for key, value in la.norms().items():
                assert np.array_equal(value, lb.norms()[key]), (name, key)
        assert np.array_equal(base.embedding.to_f32(), m.embedding.to_f32())
        assert np.array_equal(base.output_norm, m.output_norm)
    assert models["i2_s"].notes == models["tq2_0"].notes == ["parsed by the own reader"]


def test_own_gguf_reader_agrees_with_the_gguf_package(files: dict) -> None:
    """vtpu reads GGUF with its own parser first (faster on big vocabularies); on the files the gguf
    package can read, both give the same metadata and tensor views."""
    from vtpu_cli.models.gguf_file import _read_own, _read_with_package

    for name in ("tq2_0", "tq1_0"):
        own, pkg = _read_own(files[name]), _read_with_package(files[name])
        assert own.meta.keys() == pkg.meta.keys()
        for k, v in pkg.meta.items():
            assert (list(own.meta[k]) == list(v)) if isinstance(v, list) else own.meta[k] == v, k
        assert own.tensors.keys() == pkg.tensors.keys()
        for t, b in pkg.tensors.items():
            a = own.tensors[t]
            assert (a.type_id, a.shape) == (b.type_id, b.shape) and np.array_equal(a.data, b.data), t


def test_loaded_weights_match_the_source_and_stay_compact(models: dict) -> None:
    spec = SynthSpec()
    tok = train_tokenizer(spec.vocab)
    w = random_weights(spec, tok.get_vocab_size())
    m = models["tq1_0"]
    assert np.array_equal(m.layers[1].w_down.ternary(), w.ternary[1]["w_down"])
    assert m.layers[0].wk.scale == w.scales[0]["wk"]
    assert np.array_equal(m.embedding.to_f32(), w.embedding)
    per_layer = 2 * 256 * 256 + 2 * 128 * 256 + 3 * 512 * 256
    assert m.ternary_bytes == spec.layers * per_layer // 4
    # dense tables stay in their file encoding (no float32 copies)
    assert models["hf"].embedding.raw.dtype == np.uint16 and models["tq2_0"].embedding.raw.dtype == np.float16


def test_reference_logits_identical_across_formats(models: dict) -> None:
    ids = models["hf"].tokenizer.encode(PROMPT)
    logits = {name: Reference(models[name]).forward(ids) for name in FORMATS}
    base = logits["hf"]
    assert base.shape == (len(ids), 300) and np.all(np.isfinite(base)) and base.std() > 1.0
    for name in FORMATS[1:]:
        assert np.array_equal(logits[name], base), name


def test_greedy_tokens_identical_for_32_steps(models: dict) -> None:
    prompt = models["hf"].tokenizer.encode(PROMPT)
    runs = {name: Reference(models[name]).generate(prompt, 32) for name in FORMATS}
    assert len(runs["hf"]) == 32 and len(set(runs["hf"])) > 8  # not a degenerate repetition
    for name in FORMATS[1:]:
        assert runs[name] == runs["hf"], name


def test_kv_cache_matches_full_forward(models: dict) -> None:
    m = models["tq2_0"]
    ids = m.tokenizer.encode(PROMPT)
    full = Reference(m).forward(ids)
    ref = Reference(m)
    step = np.concatenate([ref.forward(ids[:5])] + [ref.forward([t]) for t in ids[5:]])
    assert np.allclose(step, full, rtol=1e-10, atol=1e-10)
    # causality: the first positions do not depend on later tokens
    other = Reference(m).forward(ids[:5] + [7, 8, 9])
    assert np.allclose(other[:5], full[:5], rtol=1e-12, atol=1e-12)
    assert not np.allclose(other[5:], full[5:8])


def test_reference_building_blocks() -> None:
    xq, s = quantize_activations(np.array([[1.0, -0.5, 0.25, 0.0]]))
    # 127 * [1, -0.5, 0.25]: -63.5 rounds half to even
    assert xq.tolist() == [[127.0, -64.0, 32.0, 0.0]] and s[0, 0] == 1 / 127
    xq, _ = quantize_activations(np.zeros((1, 3)))
    assert xq.tolist() == [[0.0, 0.0, 0.0]]
    x = np.arange(8, dtype=np.float64).reshape(1, 1, 8)
    assert np.array_equal(rope(x, np.array([0]), 10000.0), x)
    # position 1, pair (0, 4) rotates by angle 1 rad (inv_freq[0] = 1)
    y = rope(np.eye(8)[None, :1, :], np.array([1]), 10000.0)
    assert np.allclose(y[0, 0, [0, 4]], [np.cos(1.0), np.sin(1.0)])


def test_sampling() -> None:
    logits = np.array([0.0, 3.0, 1.0, 3.0, -2.0])
    assert Sampler()(logits) == 1  # greedy: lowest id among ties
    draws = [Sampler(1.0, seed=9)(logits) for _ in range(3)]
    assert draws == [draws[0]] * 3  # same seed, same draw
    s = Sampler(1.0, seed=1)
    counts = np.bincount([s(logits) for _ in range(4000)], minlength=5) / 4000
    p = np.exp(logits) / np.exp(logits).sum()
    assert np.allclose(counts, p, atol=0.03)
    assert {Sampler(5.0, top_k=2, seed=i)(logits) for i in range(50)} == {1, 3}
    # p = [0.023, 0.456, 0.062, 0.456, 0.003]: top-p keeps the smallest prefix reaching p
    order, probs = Sampler(1.0, top_p=0.4).probabilities(logits)
    assert order.tolist() == [1] and probs.tolist() == [1.0]
    order, probs = Sampler(1.0, top_p=0.9).probabilities(logits)
    assert order.tolist() == [1, 3] and np.allclose(probs, [0.5, 0.5])
    order, _ = Sampler(1.0, top_p=0.95).probabilities(logits)
    assert order.tolist() == [1, 3, 2]


def test_seeded_generation_is_reproducible(models: dict) -> None:
    prompt = models["hf"].tokenizer.encode("The lazy dog")
    a = Reference(models["hf"]).generate(prompt, 12, Sampler(0.8, top_k=20, top_p=0.95, seed=4))
    b = Reference(models["i2_s"]).generate(prompt, 12, Sampler(0.8, top_k=20, top_p=0.95, seed=4))
    assert a == b and len(a) == 12


def test_prompt_longer_than_context(models: dict) -> None:
    with pytest.raises(ModelError, match="longer than the context of 4"):
        Reference(models["hf"], ctx=4).generate(list(range(5)), 1)


def test_hf_divide_convention(tmp_path: Path, models: dict) -> None:
    spec = SynthSpec()
    tok = train_tokenizer(spec.vocab)
    w = random_weights(spec, tok.get_vocab_size())
    m = load_model(write_hf(tmp_path / "div", w, tok, scale_mode="divide"))
    assert m.notes == ["weight_scale applied by divide"]
    for a, b in zip(models["hf"].ternary_matrices(), m.ternary_matrices(), strict=True):
        assert np.array_equal(a.packed, b.packed) and b.scale == pytest.approx(a.scale, rel=1e-6)
    ids = m.tokenizer.encode(PROMPT)
    assert np.allclose(Reference(m).forward(ids), Reference(models["hf"]).forward(ids), rtol=1e-5, atol=1e-5)


def test_online_absmean_ternarisation() -> None:
    w = ternary((8, 16), 2).astype(np.float32) * 0.3
    t = STTensor("model.layers.0.mlp.up_proj.weight", "F32", w.shape, w, Path("m.safetensors"))
    m = _absmean_ternarize(t, "m.safetensors")
    assert np.array_equal(m.ternary(), np.sign(w).astype(np.int8))
    assert m.scale == pytest.approx(np.abs(w).mean())


def test_q8_0_embedding(tmp_path: Path, files: dict[str, Path], models: dict) -> None:
    spec = SynthSpec()
    tok = train_tokenizer(spec.vocab)
    w = random_weights(spec, tok.get_vocab_size())
    path = write_gguf_tq(tmp_path / "q8.gguf", w, files["hf"] / "tokenizer.json", tok, "TQ2_0", embed="q8_0")
    m = load_model(path)
    assert m.embedding.kind == "q8_0"
    raw = read_gguf(path).tensors["token_embd.weight"].data.reshape(300, -1)
    assert np.array_equal(m.embedding.to_f32(), gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q8_0))
    assert np.allclose(m.embedding.to_f32(), models["hf"].embedding.to_f32(), atol=0.01)


# ------------------------------------------------------------------ tokenizers


def test_tokenizer_round_trip_and_formats_agree(models: dict) -> None:
    texts = [PROMPT, "numbers 12 256 4096\n\ttabs and  spaces", "unicode: héllo wörld ✓ 日本", ""]
    base = models["hf"].tokenizer
    assert base.bos_id == 0 and base.eos_id == 1 and base.vocab_size == 300
    for text in texts:
        ids = base.encode(text)
        assert ids[0] == base.bos_id
        assert base.decode(ids) == text
        for name in FORMATS[1:]:
            assert models[name].tokenizer.encode(text) == ids, (name, text)
            assert models[name].tokenizer.decode(ids) == text
    assert len(base.encode("the the the", add_bos=False)) < len("the the the")  # merges are used
    assert base.chat_template and models["i2_s"].tokenizer.chat_template == base.chat_template


def test_spm_vocabulary_from_gguf() -> None:
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    words = [
        "\u2581",
        "\u2581Hello",
        "\u2581world",
        "\u2581wor",
        "ld",
        "H",
        "e",
        "l",
        "o",
        "w",
        "r",
        "d",
        "!",
    ]
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": pieces + words,
        "tokenizer.ggml.token_type": types + [1] * len(words),
        "tokenizer.ggml.scores": [0.0] * len(pieces) + [-1.0, -2.0, -2.0, -3.0, -3.0] + [-5.0] * 8,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }
    tok = tokenizer_from_gguf(meta, "spm.gguf")
    ids = tok.encode("Hello world!")
    assert ids[:3] == [1, 259 + 1, 259 + 2]  # BOS, ▁Hello, ▁world
    assert tok.decode(ids) == "Hello world!"
    ids = tok.encode("Hé ✓", add_bos=False)  # unknown characters fall back to bytes
    assert tok.decode(ids) == "Hé ✓" and 3 + 0xC3 in ids
    with pytest.raises(ModelError, match="tokenizer.ggml.model 'bert' is not supported"):
        tokenizer_from_gguf(meta | {"tokenizer.ggml.model": "bert"}, "x.gguf")
    with pytest.raises(ModelError, match="x.gguf: no embedded tokenizer"):
        tokenizer_from_gguf({}, "x.gguf")


def test_llama3_pre_tokenizer(models: dict, files: dict[str, Path]) -> None:
    meta = read_gguf(files["tq2_0"]).meta
    tok = tokenizer_from_gguf(meta | {"tokenizer.ggml.pre": "llama-bpe"}, "x.gguf")
    for text in (PROMPT, "it's 12345 cats\n\n  ok"):
        assert tok.decode(tok.encode(text)) == text


# ------------------------------------------------------------------ bad input


def _patch(path: Path, marker: bytes, skip: int, new: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(marker) + len(marker) + skip
    data[at : at + len(new)] = new
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["tq2_0", "i2_s"])
def test_truncated_gguf(tmp_path: Path, files: dict[str, Path], fmt: str) -> None:
    data = files[fmt].read_bytes()
    for cut in (len(data) * 2 // 3, 300):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=f"cut{cut}.gguf.*truncated") as err:
            load_model(bad)
        if cut > 1000:
            assert "tensor " in str(err.value)


@pytest.mark.parametrize(("fmt", "type_id", "type_name"), [("tq2_0", 2, "Q4_0"), ("i2_s", 99, "type 99")])
def test_unknown_tensor_type(
    tmp_path: Path, files: dict[str, Path], fmt: str, type_id: int, type_name: str
) -> None:
    bad = tmp_path / "bad.gguf"
    shutil.copy(files[fmt], bad)
    # tensor info: name, n_dims (u32), 2 dims (u64), type (u32)
    _patch(bad, b"blk.0.attn_q.weight", 4 + 16, struct.pack("<I", type_id))
    with pytest.raises(ModelError, match=f"bad.gguf: tensor blk.0.attn_q.weight has .*{type_name}"):
        load_model(bad)


def test_unknown_architecture_and_bad_shapes(tmp_path: Path, files: dict[str, Path]) -> None:
    bad = tmp_path / "arch.gguf"
    shutil.copy(files["tq2_0"], bad)
    _patch(bad, b"general.architecture", 4 + 8, b"llama3")
    with pytest.raises(ModelError, match="arch.gguf: general.architecture 'llama3' is not a BitNet"):
        load_model(bad)
    bad = tmp_path / "ffn.gguf"
    shutil.copy(files["tq2_0"], bad)
    _patch(bad, b"bitnet.feed_forward_length", 4, struct.pack("<I", 768))
    with pytest.raises(ModelError, match=r"ffn.gguf: tensor blk.0.ffn_gate.weight has shape \(512, 256\)"):
        load_model(bad)


def test_bad_hf_directories(tmp_path: Path, files: dict[str, Path]) -> None:
    hf = tmp_path / "hf"
    shutil.copytree(files["hf"], hf)
    (hf / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="tokenizer.json: tokenizer file not found"):
        load_model(hf)
    assert load_model(hf, tokenizer=False).tokenizer is None

    cfg = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps(cfg | {"intermediate_size": 768}))
    with pytest.raises(
        ModelError, match=r"tensor model.layers.0.mlp.gate_proj.weight has shape \(128, 256\)"
    ):
        load_model(hf, tokenizer=False)
    (hf / "config.json").write_text(json.dumps(cfg | {"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(ModelError, match="config.json: architectures.*is not BitNetForCausalLM"):
        load_model(hf, tokenizer=False)
    (hf / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json: cannot read JSON"):
        load_model(hf, tokenizer=False)
    (hf / "config.json").write_text(json.dumps(cfg))
    st_path = hf / "model.safetensors"
    st_path.write_bytes(st_path.read_bytes()[:-1000])
    with pytest.raises(ModelError, match=r"model.safetensors: tensor \S+ is truncated"):
        load_model(hf, tokenizer=False)
    with pytest.raises(ModelError, match="no such file or directory"):
        load_model(tmp_path / "missing")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello")
    with pytest.raises(ModelError, match="junk.bin: not a model directory or a GGUF file"):
        load_model(junk)


def test_make_models_script(tmp_path: Path) -> None:
    import runpy

    script = Path(__file__).resolve().parent.parent / "programs" / "models" / "make_models.py"
    main = runpy.run_path(str(script))["main"]
    assert main([str(tmp_path), "--layers", "1", "--vocab", "280", "--seed", "7"]) == 0
    a, b = load_model(tmp_path / "hf"), load_model(tmp_path / "model-i2_s.gguf")
    assert a.config.layers == 1 and a.config == b.config
    assert np.array_equal(a.layers[0].wv.packed, b.layers[0].wv.packed)


def test_loading_makes_no_float_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    import vtpu_cli.models.ternary as ternary_mod

    spec = SynthSpec(hidden=1024, ffn=2048, layers=1, heads=8, kv_heads=2, vocab=280)
    paths = write_all(tmp_path, spec)
    monkeypatch.setattr(ternary_mod, "CHUNK_WEIGHTS", 1 << 16)
    f32_matrix = 2048 * 1024 * 4  # one float32 copy of a single FFN matrix: 8 MiB
    for name, path in paths.items():
        load_model(path, tokenizer=False)  # warm imports and caches
        tracemalloc.start()
        try:
            m = load_model(path, tokenizer=False)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert m.ternary_bytes == (2 * 1024 * 1024 + 2 * 256 * 1024 + 3 * 2048 * 1024) // 4
        assert peak - m.ternary_bytes < f32_matrix // 2, (name, peak)


def test_config_values_are_checked() -> None:
    from vtpu_cli.models import ModelConfig

    cfg = {
        "architectures": ["BitNetForCausalLM"],
        "hidden_size": 2560,
        "intermediate_size": 6912,
        "num_hidden_layers": 30,
        "num_attention_heads": 20,
        "num_key_value_heads": 5,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-05,
        "tie_word_embeddings": True,
        "max_position_embeddings": 4096,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "hidden_act": "relu2",
    }
    c = ModelConfig.from_hf_dict(cfg)
    assert (c.head_dim, c.kv_dim, c.rope_theta, c.eos_id) == (128, 640, 500000.0, 128001)
    assert c.rms_eps == float(np.float32(1e-5))
    with pytest.raises(ModelError, match="config.json: bad value in config"):
        ModelConfig.from_hf_dict(cfg | {"rope_theta": "fast"})
    with pytest.raises(ModelError, match="missing key 'vocab_size'"):
        ModelConfig.from_hf_dict({k: v for k, v in cfg.items() if k != "vocab_size"})
    with pytest.raises(ModelError, match="hidden_act 'silu' is not supported"):
        ModelConfig.from_hf_dict(cfg | {"hidden_act": "silu"})
    with pytest.raises(ModelError, match="20 heads are not a multiple of 3 KV heads"):
        ModelConfig.from_hf_dict(cfg | {"num_key_value_heads": 3})
    meta = {
        "general.architecture": "bitnet",
        "bitnet.embedding_length": 2560,
        "bitnet.feed_forward_length": 6912,
        "bitnet.block_count": 30,
        "bitnet.attention.head_count": 20,
        "bitnet.attention.head_count_kv": 5,
        "bitnet.rope.freq_base": 500000.0,
        "bitnet.vocab_size": 128256,
    }
    g = ModelConfig.from_gguf_metadata(meta, "m.gguf", tied=True)
    assert (g.hidden, g.ffn, g.layers, g.kv_heads, g.head_dim, g.vocab) == (2560, 6912, 30, 5, 128, 128256)
    with pytest.raises(ModelError, match="m.gguf: missing metadata key 'bitnet.block_count'"):
        ModelConfig.from_gguf_metadata(
            {k: v for k, v in meta.items() if "block" not in k}, "m.gguf", tied=True
        )
    with pytest.raises(ModelError, match="m.gguf: bad metadata value"):
        ModelConfig.from_gguf_metadata(meta | {"bitnet.block_count": "x"}, "m.gguf", tied=True)
    relu2 = ModelConfig.from_gguf_metadata(meta | {"bitnet.hidden_activation": "relu2"}, "m.gguf", tied=True)
    assert relu2 == g
    with pytest.raises(ModelError, match="m.gguf: bitnet.hidden_activation 'silu' is not supported"):
        ModelConfig.from_gguf_metadata(meta | {"bitnet.hidden_activation": "silu"}, "m.gguf", tied=True)


def test_untied_lm_head(tmp_path: Path, files: dict[str, Path], models: dict) -> None:
    spec = SynthSpec()
    tok = train_tokenizer(spec.vocab)
    w = random_weights(spec, tok.get_vocab_size())
    head = w.embedding * 0.5  # a power-of-two multiple: every logit is exactly half the tied one
    hf = load_model(write_hf(tmp_path / "untied", w, tok, lm_head=head))
    tq = load_model(
        write_gguf_tq(tmp_path / "untied.gguf", w, files["hf"] / "tokenizer.json", tok, lm_head=head)
    )
    ids = models["hf"].tokenizer.encode(PROMPT)
    tied = Reference(models["hf"]).forward(ids)
    for m in (hf, tq):
        assert not m.config.tied_embeddings and m.lm_head is not m.embedding
        assert np.array_equal(Reference(m).forward(ids), 0.5 * tied)


def _naive_logits(m: BitNetModel, ids: list[int]) -> np.ndarray:
    """Token-by-token, head-by-head re-derivation of the forward pass from dequantised weights."""
    c = m.config
    dense = {id(t): t.dequantize() for t in m.ternary_matrices()}

    def norm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x**2).mean() + c.rms_eps) * w

    def lin(x: np.ndarray, t: TernaryMatrix) -> np.ndarray:
        s = max(np.abs(x).max(), 1e-5) / 127
        return dense[id(t)] @ (np.clip(np.round(x / s), -128, 127) * s)

    def rot(v: np.ndarray, pos: int) -> np.ndarray:
        d = v.size // 2
        out = np.empty_like(v)
        for i in range(d):
            a = pos / c.rope_theta ** (2 * i / v.size)
            out[i] = v[i] * np.cos(a) - v[i + d] * np.sin(a)
            out[i + d] = v[i + d] * np.cos(a) + v[i] * np.sin(a)
        return out

    hd = c.head_dim
    keys = [[] for _ in m.layers]
    vals = [[] for _ in m.layers]
    logits = []
    for pos, tok in enumerate(ids):
        h = m.embedding.to_f32()[tok].astype(np.float64)
        for li, L in enumerate(m.layers):
            x = norm(h, L.attn_norm)
            q, k, v = lin(x, L.wq), lin(x, L.wk), lin(x, L.wv)
            keys[li].append([rot(k[j * hd : (j + 1) * hd], pos) for j in range(c.kv_heads)])
            vals[li].append([v[j * hd : (j + 1) * hd] for j in range(c.kv_heads)])
            heads = []
            for hh in range(c.heads):
                j = hh // (c.heads // c.kv_heads)
                qh = rot(q[hh * hd : (hh + 1) * hd], pos)
                sc = np.array([qh @ keys[li][t][j] for t in range(pos + 1)]) / np.sqrt(hd)
                p = np.exp(sc - sc.max())
                heads.append(sum(p[t] * vals[li][t][j] for t in range(pos + 1)) / p.sum())
            h = h + lin(norm(np.concatenate(heads), L.attn_sub_norm), L.wo)
            x = norm(h, L.ffn_norm)
            g = np.maximum(lin(x, L.w_gate), 0) ** 2 * lin(x, L.w_up)
            h = h + lin(norm(g, L.ffn_sub_norm), L.w_down)
        logits.append(m.lm_head.to_f32().astype(np.float64) @ norm(h, m.output_norm))
    return np.array(logits)


def test_reference_matches_a_naive_derivation(models: dict) -> None:
    m = models["tq2_0"]
    ids = m.tokenizer.encode("The fox")
    assert np.allclose(Reference(m).forward(ids), _naive_logits(m, ids), rtol=1e-9, atol=1e-9)


def test_sharded_hf_checkpoint(tmp_path: Path, files: dict[str, Path], models: dict) -> None:
    hf = tmp_path / "sharded"
    shutil.copytree(files["hf"], hf)
    shard = "model-00001-of-00001.safetensors"
    (hf / "model.safetensors").rename(hf / shard)
    raw = (hf / shard).read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    names = [n for n in header if n != "__metadata__"]
    (hf / "model.safetensors.index.json").write_text(json.dumps({"weight_map": dict.fromkeys(names, shard)}))
    m = load_model(hf)
    assert np.array_equal(m.layers[1].wo.packed, models["hf"].layers[1].wo.packed)


def test_lazy_gguf_load_converts_on_first_use_and_not_on_a_cache_hit(files: dict, tmp_path) -> None:
    from vtpu_cli.models.cache import cached_weights
    from vtpu_cli.models.compiled import convert_weights
    from vtpu_cli.models.ternary import LazyTernary

    eager = load_model(files["tq1_0"])
    lazy = load_model(files["tq1_0"], lazy=True)
    mats = list(lazy.ternary_matrices())
    assert all(isinstance(m, LazyTernary) and not m.converted for m in mats)
    assert lazy.ternary_bytes == eager.ternary_bytes and not any(m.converted for m in mats)
    first, hit = cached_weights(lazy, tmp_path)  # a miss converts (and caches)
    assert not hit and all(m.converted for m in mats)
    for a, b in zip(eager.ternary_matrices(), mats, strict=True):
        assert a.scale == b.scale and np.array_equal(a.packed, b.packed)
    again = load_model(files["tq1_0"], lazy=True)
    second, hit = cached_weights(again, tmp_path)
    assert hit and not any(m.converted for m in again.ternary_matrices())  # a hit converts nothing
    want = convert_weights(eager)
    assert all(second[c].tobytes() == want[c].tobytes() for c in want)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([-np.inf, -2.0, -0.5, 0.0, 0.0, 1.0, 1.0, 1.0, 3.0, 7.5]), min_size=1, max_size=60
    ),
    st.integers(1, 70),
)
def test_top_k_order_matches_the_stable_sort(values, k):
    """The O(N) top-k selection the sampler uses gives the stable full sort's first k (ties by lower
    index, -inf included)."""
    from vtpu_cli.models.sampling import top_k_order

    z = np.array(values, np.float64)
    k = min(k, z.size)
    np.testing.assert_array_equal(top_k_order(z, k), np.argsort(-z, kind="stable")[:k])


def _sample_by_full_sort(logits, temperature, top_p, u):
    """The sampler's definition with the whole row sorted: probabilities exp(z - max z) over their sum in
    id order, descending (ties by lower id), the nucleus cut, then the draw ``u``."""
    z = np.asarray(logits, np.float64) / temperature
    order = np.argsort(-z, kind="stable")
    p = np.exp(z[order] - z.max()) / np.exp(z - z.max()).sum()
    if top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(p), top_p, side="left")) + 1
        order, p = order[:keep], p[:keep] / p[:keep].sum()
    return int(order[min(int(np.searchsorted(np.cumsum(p), u, side="right")), order.size - 1)])


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([1, 7, 64, 65, 600, 5000]),
    st.sampled_from([0.05, 0.3, 1.0, 4.0]),
    st.sampled_from([1.0, 0.99, 0.9, 0.5, 1e-9]),
    st.sampled_from([0, -1]),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_sampling_without_top_k_sorts_only_the_prefix_it_needs(n, temperature, top_p, top_k, seed, ties):
    """Without top-k (the `vtpu serve` default) the sampler sorts only the descending prefix the
    nucleus cut or the draw lands in (64, 512, ... candidates): the same token as sorting the whole
    row, for peaked and flat rows, ties (rounded logits) and -inf, across the prefix sizes."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(n) * rng.choice([0.1, 1.0, 6.0])
    if ties:
        logits = np.round(logits, 1)
    logits[rng.random(n) < 0.05] = -np.inf
    if np.isneginf(logits).all():
        logits[0] = 0.0
    u = np.random.default_rng(seed).random()
    want = _sample_by_full_sort(logits, temperature, top_p, u)
    assert Sampler(temperature, top_k=top_k, top_p=top_p, seed=seed)(logits) == want
