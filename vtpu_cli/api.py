"""The Python API (``import vtpu``): assemble, compile, load and run programs from scripts and notebooks.

This is the top layer beside ``cli/``: it sees only the engines' one interface (load, run, one result
type), and the command line is built on it. Every user mistake raises :class:`VtpuError` (or
:class:`DiagnosticError` with the same located diagnostics ``vtpu asm`` prints); a program that faults
returns a :class:`Result` whose ``fault`` says where (``result.raise_for_fault()`` turns it into
:class:`RunFault`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vtpu_cli.core.errors import Diagnostic, DiagnosticError, Exit, VtpuError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from vtpu_cli.binary.program import Program as _Program

__all__ = [
    "Diagnostic",
    "DiagnosticError",
    "Model",
    "ModelLoadError",
    "Program",
    "Result",
    "RunFault",
    "VtpuError",
    "assemble",
    "compile",
    "detect_language",
    "load",
]

ENGINES = ("jit", "interp")


class RunFault(VtpuError):
    """A run that faulted, deadlocked or hit ``max_steps`` (``Result.raise_for_fault``); exit code 1."""

    exit_code = Exit.FAULT

    def __init__(self, message: str, fault: Any = None):
        super().__init__(message)
        self.fault = fault


# ----------------------------------------------------------------------------- languages
_VASM_LINE = re.compile(
    r"^\s*(?:\.[a-z]+\b|[A-Za-z_.][\w.]*:\s*$|[A-Z][A-Z0-9]+(?:\.[A-Za-z0-9]+)*(?:\s|$)|\{|\})"
)
_PHX_LINE = re.compile(
    r"^\s*(?:input|output|weight|let|for|fn|if|while|return|const|param)\b|^\s*\w+\s*=[^=]"
)


def detect_language(text: str) -> str | None:
    """``"vasm"``, ``"phx"`` or None: which language a source looks like (first 60 code lines)."""
    vasm = phx = 0
    seen = 0
    for raw in text.splitlines():
        line = re.sub(r"(;|#|//).*$", "", raw)
        if not line.strip():
            continue
        seen += 1
        if _VASM_LINE.match(line):
            vasm += 1
        elif _PHX_LINE.match(line):
            phx += 1
        if seen >= 60:
            break
    if vasm == phx:
        return None
    return "vasm" if vasm > phx else "phx"


def read_text(path: str | Path) -> str:
    """A source file's text: a clear error for a missing file, a directory or a binary."""
    from vtpu_cli.asm.loader import read_source

    return read_source(Path(path))


# ----------------------------------------------------------------------------- programs
def assemble(
    text: str,
    *,
    filename: str = "<input>",
    defines: dict[str, Any] | None = None,
    lines: bool = True,
    warnings: list[Diagnostic] | None = None,
    max_errors: int = 0,
) -> Program:
    """Assemble svISA text. ``defines`` work like ``-D NAME=VALUE`` (integers or coordinates)."""
    from vtpu_cli.asm.assembler import assemble as _asm

    if detect_language(text) == "phx":
        raise VtpuError(
            f"{filename}: this looks like the .phx language, not svISA assembly",
            hint="compile it with vtpu.compile(text) (command line: `vtpu cc`)",
        )
    defs = {str(k): str(v) for k, v in (defines or {}).items()}
    prog = _asm(text, filename, lines, defines=defs, warnings=warnings, max_errors=max_errors)
    return Program(prog, language="vasm")


def compile(  # noqa: A001 - the API name the docs promise (vtpu.compile)
    phx_text: str, *, opt: int = 2, sentrons: int = 1, filename: str = "<input>", tune: bool = False
) -> Program:
    """Compile ``.phx`` text with phextcc at ``-O{opt}``; the compile report is ``program.report``."""
    from vtpu_cli.compiler.driver import compile_phx

    if opt not in (0, 1, 2, 3):
        raise VtpuError(f"unknown optimisation level {opt}", hint="use 0, 1, 2 or 3")
    if sentrons < 1:
        raise VtpuError(f"sentrons must be at least 1, got {sentrons}")
    if detect_language(phx_text) == "vasm":
        raise VtpuError(
            f"{filename}: this looks like svISA assembly, not the .phx language",
            hint="assemble it with vtpu.assemble(text) (command line: `vtpu asm`)",
        )
    try:
        prog, report = compile_phx(phx_text, filename, opt, sentrons, tune)
    except RecursionError:
        raise VtpuError(f"{filename}: the program nests too deeply to compile") from None
    return Program(prog, language="phx", report=report)


def load(path: str | Path, *, defines: dict[str, Any] | None = None, opt: int = 2) -> Program:
    """A program from disk: a ``.siw`` binary, ``.vasm`` assembly or a ``.phx`` source (compiled)."""
    from vtpu_cli.asm.loader import load_binary

    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise VtpuError(f"no such file: {p}") from None
    except IsADirectoryError:
        raise VtpuError(f"{p} is a directory, not a program") from None
    except OSError as e:
        raise VtpuError(f"cannot read {p}: {e.strerror}") from None
    from vtpu_cli.binary import siwfile

    if head == siwfile.MAGIC or p.suffix == ".siw":
        return Program(load_binary(p), language="siw")
    text = read_text(p)
    lang = {".vasm": "vasm", ".phx": "phx"}.get(p.suffix) or detect_language(text) or "vasm"
    if lang == "phx":
        return compile(text, opt=opt, filename=str(p))
    return assemble(text, filename=str(p), defines=defines)


@dataclass
class Result:
    """What a run produced: ``status`` ("ok", "fault", "deadlock", "step-limit"), ``fault`` (None when
    ok), ``outputs`` (name -> numpy array; registers have one row per sentron), ``stats`` (the
    dictionary ``vtpu run --stats --json`` prints), the ``engine`` that ran and why it fell back."""

    status: str
    fault: Any
    outputs: dict[str, np.ndarray]
    stats: dict
    engine: str
    fallback: str | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def raise_for_fault(self) -> Result:
        """Raise :class:`RunFault` unless the run ended normally; returns self for chaining."""
        if not self.ok:
            msg = self.fault.render() if self.fault is not None else self.status
            raise RunFault(f"{self.status}: {msg}", self.fault)
        return self

    def __getitem__(self, name: str) -> np.ndarray:
        return self.outputs[name]


class Program:
    """An assembled or compiled program (immutable): run it, save it as ``.siw`` or disassemble it."""

    def __init__(self, program: _Program, *, language: str = "siw", report: dict | None = None):
        self._p = program
        self.language = language
        self.report = report

    @property
    def siws(self) -> int:
        return len(self._p.code)

    @property
    def ops(self) -> int:
        return self._p.op_count()

    @property
    def names(self) -> dict[str, str]:
        """The program's named coordinates (``.coord`` / phx tensors) as coordinate strings."""
        from vtpu_cli.core import coords

        return {k: coords.format_packed(v) for k, v in sorted(self._p.coord_names.items())}

    @property
    def binary(self) -> _Program:
        """The in-memory program the engines run (``vtpu_cli.binary.program.Program``)."""
        return self._p

    def to_bytes(self) -> bytes:
        from vtpu_cli.binary import siwfile

        return siwfile.encode(self._p)

    def save(self, path: str | Path) -> Path:
        """Write the ``.siw`` binary atomically; returns the path."""
        from vtpu_cli.core.fileio import write_atomic

        write_atomic(str(path), self.to_bytes())
        return Path(path)

    def disassemble(self) -> str:
        from vtpu_cli.asm.disassembler import disassemble

        return disassemble(self._p)

    def __repr__(self) -> str:
        return f"<vtpu.Program {self.language} {self.siws} SIWs, {self.ops} ops>"

    # -- running
    def run(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        sentrons: int = 1,
        engine: str = "jit",
        max_steps: int | None = None,
        topology: str = "ring",
        cache_dir: str | Path | None = None,
        no_cache: bool = False,
    ) -> Result:
        """Run on ``sentrons`` sentrons. ``inputs`` maps a ``.coord``/tensor name or a coordinate string
        to an array that replaces (or adds) that scroll. A fault does not raise: see ``Result.fault``."""
        from vtpu_cli.machine.memory import Memory

        if engine not in ENGINES:
            raise VtpuError(f"unknown engine {engine!r}", hint="use 'jit' or 'interp'")
        if not isinstance(sentrons, int) or not 1 <= sentrons <= 4096:
            raise VtpuError(f"sentrons must be 1..4096, got {sentrons!r}")
        compiled = self._p.compiled_sentrons()
        if compiled and compiled != sentrons:  # its work split assumes that count: never half an output
            raise VtpuError(
                f"the program was compiled for {compiled} sentron(s) but the run has {sentrons}",
                hint=f"run it with sentrons={compiled}, or compile it again for {sentrons}",
            )
        program = self._with_inputs(inputs or {})
        from vtpu_cli.fleet.topology import parse_topology

        topo = parse_topology(topology, sentrons)
        if topo.n != sentrons:
            raise VtpuError(f"topology {topology} has {topo.n} nodes but the run has {sentrons} sentrons")
        mem = Memory()
        from vtpu_cli.engines.interp.interpreter import load_memory

        load_memory(program, mem)
        eng, fallback = make_engine(program, sentrons, engine, max_steps, topo, mem, cache_dir, no_cache)
        result = eng.run()
        try:
            fallback = getattr(result, "fallback", None) or fallback
            ran = "jit" if getattr(result, "engine", "interp") == "jit" and not fallback else "interp"
            outputs, missing = collect_arrays(program, result)
            st = stats_of(result, ran)
            return Result(result.status, result.fault, outputs, st, ran, fallback, missing)
        finally:
            result.memory.close()

    def _with_inputs(self, inputs: dict[str, Any]) -> _Program:
        if not inputs:
            return self._p
        import numpy as np

        from vtpu_cli.binary.program import DataScroll
        from vtpu_cli.core import coords
        from vtpu_cli.isa.table import TYPES

        data = {d.coord: d for d in self._p.data}
        for key, value in inputs.items():
            c = self._p.coord_names.get(key) if isinstance(key, str) else None
            if c is None:
                try:
                    c = coords.parse_packed(str(key))
                except coords.CoordError:
                    names = ", ".join(sorted(self._p.coord_names)) or "none"
                    raise VtpuError(
                        f"input {key!r} is neither a name of this program nor a coordinate",
                        hint=f"names: {names}",
                    ) from None
            arr = np.asarray(value)
            old = data.get(c)
            dtype = old.dtype if old is not None else _vtpu_type(arr)
            if dtype == "t2":
                from vtpu_cli.asm.assembler import pack_ternary

                if self.language == "phx":
                    from vtpu_cli.compiler.tensors import pack_ternary_tiles

                    raw = pack_ternary_tiles(arr)
                else:
                    flat = arr.astype(np.int64).reshape(-1)
                    if flat.size and (flat.min() < -1 or flat.max() > 1):
                        raise VtpuError(f"input {key!r}: ternary values are -1, 0 or 1")
                    raw = pack_ternary((flat + 1).tolist())
            elif dtype == "bf16":
                from vtpu_cli.core.numerics import f32_array_to_bf16

                raw = f32_array_to_bf16(arr.astype(np.float32)).astype("<u2").tobytes()
            else:
                try:
                    raw = arr.astype(TYPES[dtype][2], casting="same_kind").tobytes()
                except TypeError:
                    raise VtpuError(
                        f"input {key!r}: a {arr.dtype} array cannot fill a {dtype} scroll without loss",
                        hint=f"convert it first, e.g. .astype('{TYPES[dtype][2]}')",
                    ) from None
            if self.language == "phx" and old is not None and old.size and len(raw) != old.size:
                raise VtpuError(f"input {key!r}: {len(raw)} bytes for a {old.size}-byte tensor")
            data[c] = DataScroll(c, dtype, tuple(arr.shape) or (1,), raw)
        return replace(self._p, data=[data[k] for k in sorted(data)])


def _vtpu_type(arr: np.ndarray) -> str:
    kinds = {"float32": "f32", "int32": "i32", "int16": "i16", "int8": "i8", "int64": "i64", "uint8": "u8"}
    name = kinds.get(str(arr.dtype))
    if name is None:
        if arr.dtype.kind == "f":
            return "f32"
        raise VtpuError(
            f"arrays of {arr.dtype} have no svISA element type",
            hint="use float32, int64, int32, int16, int8 or uint8",
        )
    return name


def make_engine(program, sentrons, engine, max_steps, topo, mem, cache_dir=None, no_cache=False, trace=False):
    """The engine to run and why the interpreter runs when the JIT was asked for (None if not)."""
    from vtpu_cli.engines.select import EngineOptions, fallback_reason, open_engine

    opts = EngineOptions(
        engine=engine,
        sentrons=sentrons,
        max_steps=max_steps,
        topology=topo,
        trace=trace,
        cache_dir=cache_dir,
        no_cache=no_cache,
    )
    eng = open_engine(program, mem, opts)
    return eng, fallback_reason(eng)


def collect_arrays(program: _Program, result) -> tuple[dict[str, np.ndarray], list[str]]:
    """The ``.output`` values as numpy arrays (registers: one row per sentron) and missing scrolls."""
    import numpy as np

    from vtpu_cli.core import coords
    from vtpu_cli.core.numerics import bits_bf16, bits_f32, sext
    from vtpu_cli.isa.table import type_size
    from vtpu_cli.machine.tensorfile import as_array

    outs: dict[str, np.ndarray] = {}
    missing: list[str] = []
    names = {v: k for k, v in sorted(program.coord_names.items(), reverse=True)}
    for o in program.outputs:
        if o.kind == "reg":
            rows = []
            for s in result.sentrons:
                if o.reg.cls == "r":
                    v = s.R[o.reg.idx]
                    if o.dtype == "f32":
                        rows.append(np.float32(bits_f32(v)))
                    elif o.dtype == "bf16":
                        rows.append(np.float32(bits_bf16(v)))
                    else:
                        rows.append(sext(v, 8 * type_size(o.dtype)))
                else:
                    lanes = 64 // type_size(o.dtype) if o.dtype != "t2" else 256
                    rows.append(as_array(o.dtype, (lanes,), s.V[o.reg.idx].tobytes()))
            np_t = (
                {"f32": np.float32, "bf16": np.float32}.get(o.dtype, np.int64) if o.reg.cls == "r" else None
            )
            outs[str(o.reg)] = np.array(rows, dtype=np_t)
            continue
        name = names.get(o.coord) or coords.format_packed(o.coord)
        sc = result.memory.table.get(o.coord)
        if sc is None:
            missing.append(name)
            continue
        size = type_size(o.dtype)
        raw = sc.buf.tobytes()
        if sc.dtype == o.dtype and sc.shape:
            shape = tuple(sc.shape)
        else:
            if o.dtype != "t2" and len(raw) % size:
                raw = raw[: len(raw) - len(raw) % size]
            shape = (len(raw) * 4,) if o.dtype == "t2" else (len(raw) // max(size, 1),)
        outs[name] = np.array(as_array(o.dtype, shape, raw))
    return outs, missing


def stats_of(result, engine: str) -> dict:
    """Execution statistics (the same keys as ``vtpu run --stats --json``)."""
    ops = result.ops
    t = result.memory.stats
    fl = result.fleet.stats
    st = {
        "engine": engine,
        "siws": result.siws,
        "ops": ops,
        "ops_by_pipe": dict(result.ops_by_pipe),
        "ops_per_siw": ops / result.siws if result.siws else 0.0,
        "rounds": result.rounds,
        "sentrons": len(result.sentrons),
        "wall_s": result.wall_s,
        "ops_per_s": ops / result.wall_s if result.wall_s > 0 else 0.0,
        "ppt": {"translations": t.translations, "hits": t.hits, "misses": t.misses, "hit_rate": t.hit_rate},
        "fleet": {"messages": fl.messages, "bytes": fl.bytes, "barriers": fl.barriers},
    }
    if engine == "jit":
        st["jit"] = {
            "compile_s": getattr(result, "compile_s", None),
            "cache": getattr(result, "cache_hit", None),
            "cycles": getattr(result, "cycles", None),
        }
    return st


class ModelLoadError(VtpuError):
    """A model file or directory cannot be used (the message names the file and the key or tensor)."""


class Model:
    """A BitNet b1.58 checkpoint (HF folder or ``.gguf``) run through the compiled model: the decoder step
    is a ``.phx`` program compiled by phextcc and executed by the engine (docs/models.md).

    >>> m = vtpu.Model.load("model.gguf")                     # doctest: +SKIP
    >>> m.generate("The capital of France is", max_tokens=16)  # doctest: +SKIP
    """

    def __init__(self, weights, compiled) -> None:
        self.weights, self.compiled = weights, compiled

    @classmethod
    def load(
        cls, path: str | Path, *, ctx: int | None = None, engine: str = "jit", sentrons: int = 1
    ) -> Model:
        """``sentrons`` > 1 splits every matmul of the compiled step across that many sentrons
        (tensor parallel, bit-identical to one sentron: docs/models.md)."""
        from vtpu_cli.models.cache import cached_weights
        from vtpu_cli.models.compiled import CompiledModel
        from vtpu_cli.models.errors import ModelError
        from vtpu_cli.models.loader import load_model

        if engine not in ENGINES:
            raise VtpuError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
        if not isinstance(sentrons, int) or not 1 <= sentrons <= 4096:
            raise VtpuError(f"sentrons must be 1..4096, got {sentrons!r}")
        try:
            m = load_model(Path(path), lazy=True)  # converted once into the cache, not held twice
            weights, _ = cached_weights(m)
            return cls(m, CompiledModel(m, ctx=ctx, engine=engine, weights=weights, sentrons=sentrons))
        except ModelError as e:
            raise ModelLoadError(str(e)) from None

    @property
    def config(self):
        return self.weights.config

    @property
    def tokenizer(self):
        return self.weights.tokenizer

    def generate_ids(
        self,
        ids: list[int],
        max_tokens: int = 64,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        stop_at_eos: bool = True,
    ) -> list[int]:
        """Continue the token ids ``ids`` (a new sequence) by up to ``max_tokens`` tokens; greedy when
        ``temperature`` is 0 (the program's own argmax)."""
        import numpy as np

        from vtpu_cli.models.errors import ModelError
        from vtpu_cli.models.sampling import Sampler

        sampler = Sampler(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        cm = self.compiled
        cm.reset()
        eos = set(self.config.eos_ids) if stop_at_eos else set()
        out: list[int] = []
        try:
            logits = cm.forward(list(ids))[-1]
            while len(out) < max_tokens:
                tok = cm.runner.token() if sampler.greedy else sampler(logits.astype(np.float64))
                out.append(tok)
                if tok in eos or len(out) == max_tokens or cm.pos >= cm.ctx:
                    break
                logits = cm.forward([tok])[-1]
        except ModelError as e:
            raise ModelLoadError(str(e)) from None
        return out

    def logprobs(self, prompt: str | list[int]) -> np.ndarray:
        """Each token's log probability given the tokens before it, under the model's own distribution
        (log-softmax of the logits, float64 [n]; the first token's is nan): a new sequence, scored in
        batched chunks that write every row's logits (docs/models.md, "Scoring runs"). ``prompt``: text
        (tokenised with BOS when the model adds one) or token ids; it must fit the context."""
        import numpy as np

        from vtpu_cli.models.errors import ModelError

        ids = self._ids(prompt)
        out = np.full(len(ids), np.nan)
        cm = self.compiled
        if len(ids) > cm.ctx:
            raise VtpuError(f"{len(ids)} tokens do not fit the context of {cm.ctx}")
        cm.reset()
        i = 0
        try:
            for rows in cm.score(ids[:-1]):
                x = rows.astype(np.float64)
                m = x.max(axis=1)
                lse = m + np.log(np.exp(x - m[:, None]).sum(axis=1))
                nxt = ids[i + 1 : i + 1 + len(x)]
                out[i + 1 : i + 1 + len(x)] = x[np.arange(len(x)), nxt] - lse
                i += len(x)
        except ModelError as e:
            raise ModelLoadError(str(e)) from None
        return out

    def perplexity(self, text: str | list[int]) -> float:
        """exp(mean negative log-likelihood) of every token of ``text`` after the first, in
        non-overlapping windows of the context (each a new sequence), as ``vtpu perplexity``."""
        from vtpu_cli.models.errors import ModelError
        from vtpu_cli.models.generate import perplexity

        ids = self._ids(text)
        if len(ids) < 2:
            raise VtpuError(f"perplexity needs at least 2 tokens, got {len(ids)}")
        try:
            return perplexity(self.compiled, ids)[0]
        except ModelError as e:
            raise ModelLoadError(str(e)) from None

    def _ids(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ModelLoadError("this model has no tokenizer: pass token ids")
            return self.tokenizer.encode(prompt)
        ids = [int(t) for t in prompt]
        if any(not 0 <= t < self.config.vocab for t in ids):
            raise VtpuError(f"token ids must be in 0..{self.config.vocab - 1}")
        return ids

    def generate(self, prompt: str, max_tokens: int = 64, **sampling) -> str:
        """The text generated after ``prompt`` (sampling options as :meth:`generate_ids`)."""
        if self.tokenizer is None:
            raise ModelLoadError("this model has no tokenizer: use generate_ids")
        ids = self.generate_ids(self.tokenizer.encode(prompt), max_tokens, **sampling)
        eos = set(self.config.eos_ids)
        return self.tokenizer.decode([t for t in ids if t not in eos])
