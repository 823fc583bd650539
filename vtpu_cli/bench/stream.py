"""A native streaming read: the memory roofline that the kernel and language-model benchmarks compare
against (numpy's reductions reach only 60-80 % of it on the build machine)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def native_reader() -> Callable[[np.ndarray], None] | None:
    """A native streaming read of a uint8 array, whole 256-byte blocks (llvmlite, host features: four
    independent 64-byte loads per iteration XORed into four accumulators, so the loop is bound by memory,
    not arithmetic). None when it cannot be built."""
    import ctypes

    try:
        import llvmlite.binding as llvm
        import llvmlite.ir as ir

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        i64 = ir.IntType(64)
        vec = ir.VectorType(i64, 8)
        mod = ir.Module("vtpu_bench_read")
        fn = ir.Function(mod, ir.FunctionType(i64, [i64.as_pointer(), i64]), "read")
        ptr, nvec = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        loop, done = fn.append_basic_block("loop"), fn.append_basic_block("done")
        vp = b.bitcast(ptr, vec.as_pointer())
        entry = b.block
        b.branch(loop)
        b.position_at_end(loop)
        i = b.phi(i64)
        accs = [b.phi(vec) for _ in range(4)]
        new = [
            b.xor(a, b.load(b.gep(vp, [b.add(i, ir.Constant(i64, j))]), align=64)) for j, a in enumerate(accs)
        ]
        nxt = b.add(i, ir.Constant(i64, 4))
        for a, nw in zip(accs, new, strict=True):
            a.add_incoming(ir.Constant(vec, None), entry)
            a.add_incoming(nw, loop)
        i.add_incoming(ir.Constant(i64, 0), entry)
        i.add_incoming(nxt, loop)
        b.cbranch(b.icmp_unsigned("<", nxt, nvec), loop, done)
        b.position_at_end(done)
        b.ret(
            b.extract_element(
                b.xor(b.xor(new[0], new[1]), b.xor(new[2], new[3])), ir.Constant(ir.IntType(32), 0)
            )
        )
        tm = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3
        )
        ee = llvm.create_mcjit_compiler(llvm.parse_assembly(str(mod)), tm)
        ee.finalize_object()
    except Exception:  # noqa: BLE001 - no native reader: callers skip or fall back
        return None
    f = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64)(ee.get_function_address("read"))

    def read(a: np.ndarray) -> None:
        f(a.ctypes.data, a.size // 256 * 4)  # whole 256-byte blocks (the weight scrolls are)

    read.engine = ee  # type: ignore[attr-defined]  # keeps the machine code alive with the function
    return read
