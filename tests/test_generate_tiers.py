"""`vtpu generate` on the tiered JIT: the test model's step runs tier-0 native code (asserted) and gives
the reference's greedy tokens; the background tier-1 compile is replaced here by a failure, so the run
stays on tier 0 and the suite pays no optimised compile (the model's is minutes long)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

jit = pytest.importorskip("vtpu_cli.engines.jit.engine")
if not jit.jit_available()[0]:  # pragma: no cover
    pytest.skip("JIT unavailable", allow_module_level=True)

from vtpu_cli.models import Reference, load_model  # noqa: E402
from vtpu_cli.models.generate import generate_command  # noqa: E402
from vtpu_cli.models.synth import SynthSpec, write_all  # noqa: E402

CTX = 64
PROMPT = "The"


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("bitnet"), SynthSpec())


def test_generate_runs_tier0_code_and_matches_the_reference(paths, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path))
    asked: list[int] = []

    def no_background(program, **kw):
        asked.append(len(program.code))
        raise jit.JitError("no background compile in this test")

    monkeypatch.setattr(jit, "compile_detached", no_background)
    model = load_model(paths["hf"])
    want = Reference(model, ctx=CTX, head="q8").generate(model.tokenizer.encode(PROMPT), 4)
    rc = generate_command(paths["hf"], prompt=PROMPT, n=4, temp=0.0, ctx=CTX, engine="jit", json_out=True)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == want
    stats = out["stats"]
    assert stats["engine"] == "jit"
    assert stats["tier0_tokens"] == 4 and stats["full_speed_s"] == 0.0  # every token from tier-0 code
    assert asked  # a tier-1 compile was asked for (and refused here)
    assert not list(tmp_path.glob("jit-*.o"))  # tier-0 objects are never stored


def test_an_unused_spare_compile_child_is_stopped_after_the_start(paths, monkeypatch, tmp_path):
    """A cold start of several variants prestarts a compile child; when every variant compiled in this
    process (here: the size above which a tier-0 compile beside another goes to a child raised past
    the programs'), the start stops it rather than leave it idle."""
    from vtpu_cli.engines.jit import compile as C
    from vtpu_cli.models.compiled import CompiledModel

    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(jit, "compile_detached", lambda program, **kw: None)
    monkeypatch.setattr(C, "_spare", None)
    monkeypatch.setattr(C, "TIER0_CHILD_SIWS", 10**9)
    spawned = []
    real = C._spawn
    monkeypatch.setattr(C, "_spawn", lambda *a: spawned.append(real(*a)) or spawned[-1])
    cm = CompiledModel(load_model(paths["hf"]), ctx=CTX, engine="jit", tiered=True)
    cm.start()
    assert len(cm.runners) == 3 and len(spawned) == 1
    assert C._spare is None and spawned[0].poll() is not None


def test_generate_starts_a_deferred_tier1_compile_when_the_text_is_out(paths, capsys, monkeypatch, tmp_path):
    """Few spare cores (``$VTPU_JIT_BACKGROUND=later`` here): every run is on tier-0 code with no
    compile beside it, and the tier-1 compiles are started after the last token, for the next start."""
    from vtpu_cli.models.compiled import CompiledModel

    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(jit.BACKGROUND_ENV, "later")
    runs: list[int] = []
    real_run = CompiledModel._run

    def counting(self, *a, **kw):
        runs.append(1)
        return real_run(self, *a, **kw)

    asked: list[int] = []

    def recording(program, on_sent=None, **kw):
        asked.append(len(runs))
        on_sent()
        raise jit.JitError("no background compile in this test")

    monkeypatch.setattr(CompiledModel, "_run", counting)
    monkeypatch.setattr(jit, "compile_detached", recording)
    rc = generate_command(paths["hf"], prompt=PROMPT, n=4, temp=0.0, ctx=CTX, engine="jit", json_out=True)
    assert rc == 0
    stats = json.loads(capsys.readouterr().out)["stats"]
    assert stats["tier0_tokens"] == 4
    assert asked and all(k == len(runs) for k in asked)  # after every run of the generation
