"""The GGUF reader's metadata parsing: string arrays (vocabularies) read back exactly, and every
truncation or bad byte in the header is a ModelError naming the file -- never another exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtpu_cli.models.errors import ModelError
from vtpu_cli.models.gguf_file import F32, V_ARR, V_F32, V_STR, V_U32, read_gguf, write_gguf

PAYLOAD = bytes(range(1, 17))
TOKENS = st.lists(st.text(max_size=12), min_size=0, max_size=40)


def _write(path: Path, tokens: list[str], scores: list[float]) -> None:
    meta = [
        ("general.architecture", V_STR, "bitnet"),
        ("tokenizer.ggml.tokens", V_ARR, tokens, V_STR),
        ("tokenizer.ggml.scores", V_ARR, scores, V_F32),
        ("answer", V_U32, 42),
    ]
    write_gguf(path, meta, [("w", (4,), F32, PAYLOAD)])


@settings(max_examples=40, deadline=None)
@given(tokens=TOKENS)
def test_string_arrays_read_back_exactly(tmp_path_factory: pytest.TempPathFactory, tokens: list[str]) -> None:
    path = tmp_path_factory.mktemp("g") / "v.gguf"
    scores = [float(i) / 4 for i in range(len(tokens))]
    _write(path, tokens, scores)
    f = read_gguf(path)
    assert f.meta["tokenizer.ggml.tokens"] == tokens
    assert f.meta["tokenizer.ggml.scores"] == scores
    assert f.meta["answer"] == 42
    assert bytes(f.tensors["w"].data) == PAYLOAD


def test_every_truncation_of_the_header_is_a_model_error(tmp_path: Path) -> None:
    src = tmp_path / "v.gguf"
    _write(src, ["a", "bé", "", "token"], [0.0, 1.0, 2.0, 3.0])
    data = src.read_bytes()
    end = data.index(PAYLOAD) + len(PAYLOAD)  # what follows is the writer's alignment padding
    bad = tmp_path / "cut.gguf"
    for cut in range(4, end):
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=r"cut\.gguf: .*truncated"):
            read_gguf(bad)


def test_a_vocabulary_string_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    src = tmp_path / "v.gguf"
    _write(src, ["abc", "xyz"], [0.0, 1.0])
    data = bytearray(src.read_bytes())
    at = data.index(b"xyz")
    data[at] = 0xFF
    src.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"value of key 'tokenizer.ggml.tokens' is not UTF-8"):
        read_gguf(src)
