"""Hostile `.siw` input: crafted files (valid checksums, hostile fields) and a mutation fuzzer.

The oracle and the mutators live in ``tests/fuzz/siw.py``. The default suite runs the crafted cases and a
fixed sample of a few hundred inputs; ``-m slow`` runs the campaign (100,000 inputs by default; set
``VTPU_FUZZ_INPUTS``, ``VTPU_FUZZ_SHARD=i/n`` to split it over processes, ``VTPU_FUZZ_REPORT=FILE`` for
a JSON summary, ``VTPU_FUZZ_MAX_SOURCE=BYTES`` to mutate only example programs up to that source size).
"""

from __future__ import annotations

import json
import os
import tracemalloc

import pytest
from fuzz import siw as fz

from vtpu_cli.binary import limits, siwfile
from vtpu_cli.core.errors import FormatError

SMALL = 8000  # the default sample mutates only the small example programs (fast to re-assemble)


@pytest.fixture(scope="module")
def base():
    return dict(fz.seed_programs(SMALL))["programs/vadd.vasm"]


EXPECTED = {
    "DTERNARY v0, v1, v2, 5": "operand 4 of DTERNARY must be in 0..3, found 5",
    "SPART r1, p0, 9": "operand 3 of SPART must be in 0..8, found 9",
    "SINDEX p0, p1, 9, 1": "operand 3 of SINDEX must be in 0..8",
    "SALLOC p0, 64, 0": "operand 3 of SALLOC must be in 1..4096, found 0",
    "SALLOC p0, 64, 3": "must be a power of two, found 3",
    "CBAR 1": "CBAR names group 1 but the program declares 0",
    "CREDUCE r1, r2, 7": "CREDUCE names group 7",
    "CCAST r1, r2, 0, 99": "CCAST names group 99",
    "DADD r1, v0, 64": "DADD mixes scalar and vector operands",
    "DMOV v0, 1": "cannot load an immediate into a vector register",
    "DJMP 1048576": "branch target 1048576 outside the code",
    "hazard r1": "intra-SIW hazard on r1",
    "duplicate group members": "group g lists a sentron twice",
    "group named all": "group all is defined twice",
    "label with OSC": "is not a valid name",
    "source file with ESC": "control characters",
    "duplicate data coordinate": "is defined twice",
    "zero scroll of 68719476736 bytes": "declares 64.0 GiB, over the 2.0 GiB scroll limit",
    "zero scroll of 17592186044416 bytes": "declares 16.0 TiB",
    "399 zero scrolls of 2 GiB": "the memory budget",
    "shape/size mismatch": "does not match its 4 bytes",
}


def test_crafted_hostile_files_are_rejected_with_the_rule_they_break(base):
    cases = dict(fz.hostile_cases(base))
    assert set(EXPECTED) <= set(cases)
    for label, prog in cases.items():
        blob = siwfile.encode(prog)  # canonical bytes, valid checksum: only the fields are wrong
        if label in ("DSHUF v0, v1, v2", "DSQRT r1, r2"):  # controls: valid instructions are accepted
            siwfile.decode(blob, "ok.siw")
            continue
        with pytest.raises(FormatError) as e:
            siwfile.decode(blob, "x.siw", max_data=1 << 30)
        if label in EXPECTED:
            assert EXPECTED[label] in e.value.message, (label, e.value.message)


def test_declared_huge_sizes_are_refused_before_any_allocation():
    blob = siwfile.encode(dict(fz.seed_programs(SMALL))["programs/dot.vasm"])
    assert siwfile.decode(blob).data  # the seed has a data section to corrupt
    for label, bad in fz.declared_size_cases(blob):
        tracemalloc.start()
        try:
            with pytest.raises(FormatError, match="declares|data section holds"):
                siwfile.decode(bad, "big.siw")
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 1 << 20, (label, peak)


def test_non_canonical_padding_is_rejected():
    blob = siwfile.encode(dict(fz.seed_programs(SMALL))["programs/vadd.vasm"])
    body = bytearray(blob[:-32])
    body[28] = 1  # the header's reserved word
    with pytest.raises(FormatError, match="non-canonical encoding"):
        siwfile.decode(fz.reseal(bytes(body)), "x.siw")


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_SIW_FILE_BYTES", 100)
    p = tmp_path / "big.siw"
    p.write_bytes(b"VTPUSIW\0" + bytes(200))
    with pytest.raises(FormatError, match="over the 100 B .siw size limit"):
        siwfile.read(str(p))


def test_oracle_flags_a_loader_gap():
    """The harness can fail: a program the loader accepts but the assembler refuses is a finding."""
    import dataclasses

    from vtpu_cli.binary.program import Imm, Instr, Reg
    from vtpu_cli.isa.table import BY_NAME

    prog = dict(fz.seed_programs(SMALL))["programs/vadd.vasm"]
    ins = Instr(BY_NAME["DTERNARY"], None, None, None, (Reg("v", 0), Reg("v", 1), Reg("v", 2), Imm(5)))
    bad = dataclasses.replace(prog, code=[(ins, *prog.code[0][1:])], labels={}, lines=prog.lines[:1])
    out = fz.check(siwfile.encode(bad))
    assert not out.accepted and out.finding is None  # today the loader rejects it ...
    orig = siwfile.decode

    def lax(blob, name="<input>", **kw):  # ... a loader without the checks would be caught
        try:
            return orig(blob, name, **kw)
        except FormatError:
            return bad

    siwfile.decode = lax
    try:
        out = fz.check(siwfile.encode(bad), run=False)
    finally:
        siwfile.decode = orig
    assert out.accepted and out.finding and "assembler rejects" in out.finding


def test_fixed_fuzz_sample_has_no_findings():
    r = fz.campaign(0, 300, run_every=3, alloc_every=10, max_source_bytes=SMALL)
    assert r["inputs"] == 300
    assert r["findings"] == []
    # the sample reaches past the checksum: some mutants are accepted, most rejected by field checks
    assert 0 < sum(r["accepted"].values()) < r["inputs"]
    assert r["accepted"]["hostile"] == 2  # only the two control instructions


@pytest.mark.slow
@pytest.mark.timeout(0)  # a campaign runs for as long as it takes (hours at low priority)
def test_fuzz_campaign():
    total = int(os.environ.get("VTPU_FUZZ_INPUTS", "100000"))
    shard, nshards = (int(x) for x in os.environ.get("VTPU_FUZZ_SHARD", "0/1").split("/"))
    report = os.environ.get("VTPU_FUZZ_REPORT")

    def progress(done, findings, secs):
        if report:
            with open(report + ".progress", "w") as f:
                f.write(f"{done} inputs, {len(findings)} findings, {secs:.0f} s\n")
                f.writelines(f"{kind}: {what}\n" for kind, what in findings)

    max_src = os.environ.get("VTPU_FUZZ_MAX_SOURCE")  # e.g. 30000: leave out the two ~90 KB data seeds
    r = fz.campaign(
        1000 + shard, total // nshards, progress=progress, max_source_bytes=int(max_src) if max_src else None
    )
    if report:
        with open(report, "w") as f:
            json.dump(r, f, indent=1)
    assert r["findings"] == [], r["findings"][:20]
