"""Write a random BitNet b1.58 model at real size (streamed; nothing is downloaded): a llama.cpp TQ2_0
(default) or TQ1_0 GGUF, a bitnet.cpp I2_S GGUF, or an HF safetensors directory. Presets: 2b4t
(bitnet-b1.58-2B-4T: hidden 2560, ffn 6912, 30 layers, 20/5 heads, vocab 128256; 1.17 GB as TQ2_0),
100m (~100M parameters), tiny. The same seed gives the same ternary weights in every format.

    python programs/models/make_large.py OUT.gguf --preset 2b4t [--format tq2_0|tq1_0|i2_s]
        [--layers N] [--vocab V] [--seed S] [--embed-std X]
    python programs/models/make_large.py OUT_DIR --preset 100m --format hf
    python programs/models/make_large.py OUT.gguf --preset 100m --vocab 300 --confident [--fit-text F]

``--confident`` writes a model whose predictions are peaked rather than near uniform, for comparing
runtimes' perplexities (a random model's perplexity is close to chaotic: it moves by several per cent
between llama.cpp's own attention kernels). Two changes make it so:

* small ternary scales (6/256 .. 13/256) keep attention scores and residual updates O(1): the network
  is smooth, a tiny change of an activation changes the logits a little;
* the embedding is built so that the tied head reproduces a symmetric bigram score table S fitted to
  the token pairs of a text (the built-in corpus, or ``--fit-text``): S = U diag(l) U^T, the embedding's
  first columns hold k U sqrt(|l|) (k makes their RMS 4: the layers change the logits moderately), the
  output norm weight is sign(l) rms / k**2 there and 0 elsewhere, and the other columns pad every row
  to the same norm rms (so the output RMSNorm divides every row alike). One more column holds +4k for
  the text's tokens and -4k for reserved ones, which keeps the reserved tokens' logits 32 below. The
  layers add a moderate perturbation to that.

Without ``--confident`` the output is byte-identical to before.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np

from vtpu_cli.models import synth_large
from vtpu_cli.models.synth import CORPUS, train_tokenizer
from vtpu_cli.models.synth_large import FORMATS, PRESETS, LargeSpec, write_large

# RMS of the embedding's score columns: the layers (~1 per element each) perturb it moderately.
SIGNAL_RMS = 4.0
RESERVED_GAP = 4.0  # +-4 in the bias column: reserved tokens' logits sit 2 * 4**2 = 32 lower


def fit_symmetric_bigram(ids: list[int], n: int, steps: int = 3000, l2: float = 1e-5) -> np.ndarray:
    """A symmetric score table S [n, n] maximising sum_ij C_ij log softmax(S_i)_j over the bigram counts
    C of ``ids`` (Adam, float64); symmetric because a tied head with a diagonal norm is a symmetric
    bilinear form."""
    c = np.zeros((n, n))
    np.add.at(c, (np.asarray(ids[:-1]), np.asarray(ids[1:])), 1.0)
    rows = c.sum(axis=1, keepdims=True)
    s = np.zeros((n, n))
    m, v = np.zeros_like(s), np.zeros_like(s)
    for t in range(1, steps + 1):
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (rows * p - c) / max(1.0, c.sum()) + l2 * s
        g = (g + g.T) / 2
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        s -= 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return (s + s.T) / 2


def confident_tables(spec: LargeSpec, text: str) -> tuple[np.ndarray, np.ndarray]:
    """(embedding float32 [vocab, hidden], output norm weight float32 [hidden]) of the confident model."""
    tok = train_tokenizer(min(spec.vocab, 300))
    n = tok.get_vocab_size()  # type: ignore[attr-defined]
    ids = tok.encode(text).ids  # type: ignore[attr-defined]
    lam, u = np.linalg.eigh(fit_symmetric_bigram(ids, n))
    keep = np.argsort(-np.abs(lam))[: max(1, min(n, spec.hidden // 2))]
    lam, u = lam[keep], u[:, keep]
    r = len(keep)
    rng = np.random.default_rng(spec.seed + 1)
    sig = u * np.sqrt(np.abs(lam))
    kappa = SIGNAL_RMS / float(np.sqrt(np.mean(sig * sig)))  # logits stay S: the norm weight has 1/kappa**2
    emb = np.zeros((spec.vocab, spec.hidden))
    emb[:n, :r] = kappa * sig
    emb[:n, r] = kappa * RESERVED_GAP
    emb[n:, r] = -kappa * RESERVED_GAP
    norm2 = (emb * emb).sum(axis=1)
    target = float(norm2.max()) * 1.05
    pad = rng.standard_normal((spec.vocab, spec.hidden - r - 1))
    pad *= np.sqrt((target - norm2) / (pad * pad).sum(axis=1))[:, None]
    emb[:, r + 1 :] = pad
    rms = np.sqrt(target / spec.hidden)
    g = np.zeros(spec.hidden)
    g[:r] = np.sign(lam) * rms / kappa**2
    g[r] = rms / kappa**2
    return emb.astype(np.float32), g.astype(np.float32)


@contextlib.contextmanager
def confident_values(spec: LargeSpec, text: str) -> Iterator[None]:
    """While active, ``write_large`` draws the confident model's values (see the module docstring)."""
    emb, g = confident_tables(spec, text)

    class Values(synth_large._Values):
        def __init__(self, s: LargeSpec) -> None:
            super().__init__(s)
            self.norms = 0

        def ternary(self, rows: int, cols: int) -> tuple[np.ndarray, float]:
            w = self.rng.integers(-1, 2, size=(rows, cols), dtype=np.int8)
            return w, float(self.rng.integers(6, 14)) / 256

        def embedding(self, dtype: type) -> np.ndarray:
            return synth_large._bf16_bits(emb) if dtype == np.uint16 else emb.astype(dtype)

        def norm(self, shape: tuple[int, ...]) -> np.ndarray:
            self.norms += 1  # every writer emits output_norm first (synth_large._plan)
            return g.copy() if self.norms == 1 else super().norm(shape)

    with mock.patch.object(synth_large, "_Values", Values):
        yield


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="2b4t")
    ap.add_argument("--format", choices=FORMATS, default="tq2_0", help="file format (hf: a directory)")
    for k in ("hidden", "ffn", "layers", "heads", "kv-heads", "vocab", "seed"):
        ap.add_argument(f"--{k}", type=int)
    ap.add_argument("--embed-std", type=float, help="standard deviation of the embedding (default 0.4)")
    ap.add_argument("--confident", action="store_true", help="peaked predictions (see the module docstring)")
    ap.add_argument("--fit-text", help="with --confident: fit the bigram table to this UTF-8 text file")
    a = ap.parse_args(argv)
    over = {
        k.replace("-", "_"): getattr(a, k.replace("-", "_"))
        for k in ("hidden", "ffn", "layers", "heads", "kv-heads", "vocab", "seed")
    }
    over["embed_std"] = a.embed_std
    spec = dataclasses.replace(PRESETS[a.preset], **{k: v for k, v in over.items() if v is not None})
    if spec.hidden % 256 or spec.ffn % 256:
        ap.error("hidden and ffn must be multiples of 256 (TQ2_0 blocks)")

    tty = sys.stderr.isatty()  # a redirected stderr (a log, CI) gets no carriage-return stream

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\r{done}/{total} tensors", end="", file=sys.stderr)

    if a.fit_text and not a.confident:
        ap.error("--fit-text needs --confident")
    ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
    if a.confident:
        try:
            text = Path(a.fit_text).read_text(encoding="utf-8") if a.fit_text else CORPUS
        except (OSError, UnicodeDecodeError) as e:
            ap.error(f"--fit-text {a.fit_text}: cannot read ({e})")
        ctx = confident_values(spec, text)
    with ctx:
        path = write_large(a.out, spec, a.format, progress)
    if tty:
        print(file=sys.stderr)  # end the progress line
    print(f"wrote {path}: {spec.params / 1e6:.1f}M parameters", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
