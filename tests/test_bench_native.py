"""Every bench program's hot loop, read in the JIT's native code, still does the work the bench counts.

Per source loop trip the native loop must keep at least the vector FMAs and dot instructions, the memory
reads (SGATHER, CRECV) and the memory writes (SSCATTR, CSEND) of the source loop (bench/native.py). A
lowering or LLVM change that deletes or hoists counted work fails here.
"""

from __future__ import annotations

import pytest

from vtpu_cli.asm.assembler import assemble
from vtpu_cli.bench.native import hot_loop, missing_work, source_counts, source_loop
from vtpu_cli.bench.suite import assemble_program, load_manifests

jit = pytest.importorskip("llvmlite")

MANIFESTS = {m.name: m for m in load_manifests()}
# one manifest per program file (the L2/DRAM variants run the same code with other sizes)
PROGRAMS = sorted({m.program: n for n, m in sorted(MANIFESTS.items(), reverse=True)}.values())
NO_LOOP: set[str] = set()  # bench programs whose loops LLVM unrolls completely (none today)
SLOW = {"f32_gemm"}  # 1,000-SIW unrolled kernel: ~10 s of LLVM


def _program(name: str):
    m = MANIFESTS[name]
    return assemble_program(m, m.params_for("full"))


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in PROGRAMS if n not in NO_LOOP],
)
def test_native_loop_keeps_the_counted_work(name):
    src, nat, lost = missing_work(_program(name))
    assert src["ops"] > 0
    assert lost == [], f"{name}: the native hot loop lost counted work: {lost}"


STRAIGHT = """
.output r2
    DMOV r1, 3
    DADD.i64 r2, r1, 5
"""


def test_programs_without_a_native_loop_are_reported():
    from vtpu_cli.bench.native import native_counts

    for name in NO_LOOP:
        prog = _program(name)
        assert source_loop(prog)
        with pytest.raises(ValueError, match="no loop"):
            native_counts(prog)
    with pytest.raises(ValueError, match="no loop"):
        native_counts(assemble(STRAIGHT, "straight.vasm"))


def test_abort_checks_follow_the_ctx_pointer_through_copies():
    """The abort flag's pointer is found when ctx was copied out of %rdi first (as register pressure
    makes LLVM do): missing it hid real loops -- the embedding program's loop was taken as unrolled."""
    from vtpu_cli.bench.native import Insn, abort_checks

    def ins(op: str, *ops: str) -> Insn:
        return Insn(0, op, list(ops), f"{op} {', '.join(ops)}")

    body = [
        ins("movq", "%rdi", "%rbx"),
        ins("movq", "$0", "%rdi"),  # %rdi reused
        ins("movq", "336(%rbx)", "%rax"),
        ins("movq", "%rax", "64(%rsp)"),
        ins("movq", "64(%rsp)", "%r10"),
        ins("movl", "(%r10)", "%eax"),
        ins("movq", "336(%rdi)", "%rcx"),  # %rdi no longer holds ctx
        ins("movl", "(%rcx)", "%eax"),
    ]
    assert abort_checks(body, 336) == {5}


HOISTABLE = """
.coord X = 1.2.4/1.1.1/1.1.1
.data X f32[32] 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2
.output v2
    DMOV r1, 1000              | SCOORD p0, X
    DBCAST.f32 v2, 0.0
loop:
    DFMA.f32 v2, v3, v4, v2    | SGATHER.f32 v5, [p0]
    DLOOP r1, loop             | SGATHER.f32 v6, [p0 + 64]
"""


def test_a_loop_whose_loads_are_hoisted_fails_the_check():
    """The old balanced/d_heavy pattern: loads of fixed addresses leave the native loop."""
    prog = assemble(HOISTABLE, "hoistable.vasm")
    src, nat, lost = missing_work(prog)
    assert src["reads"] == 2 and nat["reads"] == 0
    assert any(x.startswith("reads") for x in lost)


def test_source_counts_of_balanced():
    c = source_counts(_program("balanced"))
    assert c == {
        "fma": 11,
        "dot": 0,
        "reads": 16,  # 12 SGATHER + 4 CRECV
        "writes": 8,  # 4 SSCATTR + 4 CSEND
        "vector_reads": 16,
        "vector_writes": 8,
        "ops": 48,
    }


MESSAGES = """
.const N = 8
    DMOV r1, N
    DMOV r9, 0
    DBCAST.i32 v1, 3
loop:
    DADD r2, r2, 1
                                   |                                  | CPACK.i64 m2, r2
                                   |                                  | CSEND m2, r9
                                   |                                  | CPACK.i32 m0, v1
                                   |                                  | CSEND m0, r9
                                   |                                  | CRECV m3, r9
                                   |                                  | CUNPACK.i64 r4, m3
                                   |                                  | CRECV m1, r9
                                   |                                  | CUNPACK.i32 v2, m1
    DLOOP r1, loop
"""


def test_a_scalar_message_counts_as_a_scalar_access():
    """A message packed from / unpacked into a scalar register is 8 bytes: its send and receive need a
    (scalar) write and read in the native loop, a vector message's need vector ones."""
    c = source_counts(assemble(MESSAGES, "messages.vasm"))
    assert (c["reads"], c["vector_reads"], c["writes"], c["vector_writes"]) == (2, 1, 2, 1)
    # a receive whose message is never unpacked in the loop stays a vector read (the strict default)
    c = source_counts(assemble(MESSAGES.replace("CUNPACK.i64 r4, m3", "CNOP"), "m.vasm"))
    assert (c["reads"], c["vector_reads"]) == (2, 2)


ASM = """
vtpu_entry:
	movq	336(%rdi), %r15
	movq	%r15, 64(%rsp)
.LBB0_1:
	movq	64(%rsp), %rax
	movl	(%rax), %eax
	testl	%eax, %eax
	jne	.LBB0_9
	vfmadd231ps	(%rcx,%r14), %zmm1, %zmm2
	vmovups	%zmm2, (%rdx,%r14)
	vmovaps	%zmm3, 128(%rsp)
	vmovaps	192(%rsp,%rax), %zmm4
	movl	(%r15), %r11d
	testl	%r11d, %r11d
	jne	.LBB0_9
	vpdpbusd	%zmm5, %zmm6, %zmm7
	cmpq	%r10, %r8
	jne	.LBB0_1
.LBB0_9:
	retq
.Lfunc_end0:
"""


def test_asm_counting_rules():
    """Two abort checks (a spilled and a register-held pointer) = two source trips per machine trip;
    a folded load counts as a read, a plain stack slot (spill) does not, an indexed one (the C ring) does."""
    c = hot_loop(ASM, 336)
    assert c.trips == 2
    assert (c.fma, c.dot, c.reads, c.writes, c.vector_reads, c.vector_writes) == (1, 1, 2, 1, 2, 1)


# Two native copies of one source loop (the JIT's fast clone and the general loop): the first keeps the
# FMA's load, the second lost it (as when LLVM forwards a value it can prove). The check reads both.
TWO_COPIES = """
vtpu_entry:
	movq	336(%rdi), %r15
.LBB0_1:
	movl	(%r15), %eax
	testl	%eax, %eax
	jne	.LBB0_9
	vfmadd231ps	(%rcx,%r14), %zmm1, %zmm2
	vmovups	%zmm2, (%rdx,%r14)
	cmpq	%r10, %r8
	jne	.LBB0_1
.LBB0_5:
	movl	(%r15), %eax
	testl	%eax, %eax
	jne	.LBB0_9
	vfmadd231ps	%zmm3, %zmm1, %zmm2
	vmovups	%zmm2, (%rdx,%r14)
	cmpq	%r10, %r8
	jne	.LBB0_5
.LBB0_9:
	retq
.Lfunc_end0:
"""

ONE_LOOP = """
.output v2
    DMOV r1, 4
loop:
    DFMA.f32 v2, v3, v4, v2    | SGATHER.f32 v5, [p0 + r2]
    DLOOP r1, loop             | SSCATTR.f32 [p0 + r2], v6
"""


def test_every_native_copy_of_the_hot_loop_keeps_the_work(monkeypatch):
    """A fast clone that lost a counted read fails even though the general loop kept it (the busiest
    loop alone was checked before: a clone forwarding messages through registers passed)."""
    from vtpu_cli.bench import native

    monkeypatch.setattr(native, "program_asm", lambda program: TWO_COPIES)
    prog = assemble(ONE_LOOP, "one.vasm")
    assert [c.reads for c in native.native_copies(prog)] == [1, 0]
    src, nat, lost = missing_work(prog)
    assert (src["reads"], nat["reads"]) == (1, 0)
    assert lost and all("line" in x for x in lost) and any(x.startswith("reads") for x in lost)
    # both copies keep the load: nothing is lost
    monkeypatch.setattr(
        native,
        "program_asm",
        lambda program: TWO_COPIES.replace("%zmm3,", "(%rcx,%r14),"),
    )
    assert missing_work(prog)[2] == []


def test_native_report_command(capsys):
    """``python -m vtpu_cli.bench.native NAME``: each native copy's instructions and counted work."""
    from vtpu_cli.bench.native import _main

    assert _main(["double_buffer"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("double_buffer: 21 ops per source trip") and out.count("native loop at line") >= 1
    assert "LOST" not in out
    assert _main(["nope"]) == 2
