"""`vtpu bench --lm`: the language-model benchmark (shape parsing, the measured fields, decode tokens
checked against the float64 reference, errors). Timings are reported, never asserted."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

from vtpu_cli.models import ModelError  # noqa: E402
from vtpu_cli.models.bench_lm import parse_synthetic, run_lm_bench, stream_bandwidth  # noqa: E402
from vtpu_cli.models.synth_large import PRESETS  # noqa: E402


def test_parse_synthetic_presets_and_overrides():
    assert parse_synthetic("synthetic") == ("tiny", PRESETS["tiny"])
    name, s = parse_synthetic("synthetic:2b4t,layers=2,vocab=1000")
    assert name == "2b4t"
    assert (s.hidden, s.ffn, s.layers, s.heads, s.kv_heads, s.vocab) == (2560, 6912, 2, 20, 5, 1000)
    assert parse_synthetic("synthetic:layers=3")[1].layers == 3  # overrides of the default preset
    for bad, msg in (
        ("synthetic:huge", "unknown synthetic shape"),
        ("synthetic:tiny,layers=x", "bad override"),
        ("synthetic:tiny,colour=3", "bad override"),
        ("synthetic:tiny,heads=3", "multiple of 32"),
        ("synthetic:tiny,kv_heads=3", "multiple of kv_heads"),
    ):
        with pytest.raises(ModelError, match=msg):
            parse_synthetic(bad)


def test_presets_have_the_documented_sizes():
    assert round(PRESETS["2b4t"].params / 1e9, 2) == 2.41  # 2.08 G ternary + 0.33 G embedding
    assert round(PRESETS["100m"].params / 1e6) == 100


def test_stream_bandwidth_is_positive():
    bw, how = stream_bandwidth(8 << 20, passes=1)
    assert bw > 1e8 and how
    bw2, how2 = stream_bandwidth(8 << 20, passes=1, threads=2)  # the ceiling of a 2-sentron step
    assert bw2 > 1e8 and (how2.endswith("2 threads") or how2 == "numpy max")


def test_lm_bench_interp_tiny_verifies_decode_tokens():
    r = run_lm_bench("synthetic:tiny", prompt=6, tokens=3, engine="interp", repeats=1, prefill_chunk=4)
    assert r["verified"] is True
    assert r["engines_used"] == ["interp"]
    assert r["prefill_chunks"] == [4] and r["prompt_tokens"] == 6
    assert r["prefill_plan"] == [(4, 4), (2, 4)]
    for k in ("prefill_tok_s", "decode_tok_s", "ttft_s", "roofline_fraction", "stream_read_bytes_s"):
        assert r[k] > 0, k
    # bytes per token: the ternary tiles (= the packed weights) plus norms, scales and the int8 head with its row scales
    c = r["config"]
    assert (
        r["weight_bytes_per_token"] >= r["ternary_weight_bytes"] + c["hidden"] * c["vocab"] + c["vocab"] * 4
    )
    assert r["peak_rss_bytes"] > 0


def test_lm_bench_cli_json_and_errors(capsys, tmp_path):
    from vtpu_cli.cli.main import cli

    args = ["bench", "--lm", "synthetic:tiny", "--lm-prompt", "1", "--lm-tokens", "2", "--engine", "interp"]
    assert cli([*args, "--repeats", "1", "--json", "-"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["verified"] is True
    assert cli(["bench", "--lm", "synthetic:nope", "--json", "-"]) == 2
    assert "unknown synthetic shape" in json.loads(capsys.readouterr().out)["error"]
    assert cli(["bench", "--lm", str(tmp_path / "missing.gguf")]) == 2
    assert "missing.gguf" in capsys.readouterr().err
    assert cli(["bench", "--lm", "synthetic:tiny", "--lm-prompt", "300", "--lm-ctx", "256"]) == 2
    assert "exceed the context" in capsys.readouterr().err


def test_large_writer_gguf_loads_with_the_padded_vocabulary(tmp_path):
    """The streamed TQ2_0 writer (used for the 2B-4T and ~100M measurements) gives a file vtpu loads:
    shapes from the metadata, the corpus tokenizer padded with reserved control tokens, ternary
    matrices with one scale, and the reference runs on it."""
    import dataclasses

    import numpy as np

    from vtpu_cli.models import Reference, load_model
    from vtpu_cli.models.synth_large import write_large_tq2_0

    spec = dataclasses.replace(PRESETS["tiny"], vocab=400, layers=1)
    path = write_large_tq2_0(tmp_path / "m.gguf", spec)
    assert not (tmp_path / "m.gguf.part").exists()
    m = load_model(path)
    c = m.config
    assert (c.hidden, c.ffn, c.layers, c.heads, c.kv_heads, c.vocab) == (256, 512, 1, 4, 2, 400)
    assert m.embedding.rows == 400 and m.tokenizer is not None
    ids = m.tokenizer.encode("The quick brown fox")
    assert ids[0] == c.bos_id and max(ids) < 300  # real text never hits the reserved tokens
    w = m.layers[0].wq.ternary()
    assert set(np.unique(w)) <= {-1, 0, 1} and (w == 0).mean() > 0.2
    logits = Reference(m, ctx=32).forward(ids)
    assert logits.shape == (len(ids), 400) and np.isfinite(logits).all()


def test_paired_decode_splits_the_bytes_and_reruns_in_place():
    """The paired breakdown reads exactly the bytes a decode step is charged with (layers + head), re-runs
    the step without advancing the position (the same token each round), and reports positive times (never asserted as speeds)."""
    from vtpu_cli.models.bench_lm import bytes_per_token, paired_decode, parse_synthetic, synthetic_model
    from vtpu_cli.models.compiled import CompiledModel

    _, shape = parse_synthetic("synthetic:tiny")
    cm = CompiledModel(synthetic_model(shape, 64), ctx=64, engine="interp", prefill=1)
    cm.forward([3, 5, 7])
    pos = cm.pos
    p = paired_decode(cm, rounds=2)  # raises if a re-run gives another token
    if p is None:
        pytest.skip("no native reader here")
    assert cm.pos == pos
    assert p["layer_bytes"] + p["head_bytes"] == bytes_per_token(cm)
    c = cm.cfg
    assert p["head_bytes"] == c.vocab * c.hidden + c.vocab * 4  # int8 rows + f32 row scales
    for k in ("step_ms", "layers_step_ms", "read_layers_ms", "read_head_ms", "fraction", "layers_fraction"):
        assert p[k] > 0, k
