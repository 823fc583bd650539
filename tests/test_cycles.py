"""The TSC calibration is done once per boot and kept in the private cache folder."""

from __future__ import annotations

import json

import pytest

from vtpu_cli.core import cycles


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("VTPU_CACHE_DIR", str(tmp_path))
    cycles.tsc_hz.cache_clear()
    yield tmp_path
    cycles.tsc_hz.cache_clear()


def test_calibration_is_saved_and_reused(fresh, monkeypatch):
    if cycles.tsc_reader() is None or cycles._boot_key() is None:
        pytest.skip("no TSC or no boot id on this host")
    hz = cycles.tsc_hz()
    assert 1e8 < hz < 1e10
    saved = json.loads((fresh / "clock" / "tsc.json").read_text())
    assert saved["hz"] == hz and saved["key"] == cycles._boot_key()
    cycles.tsc_hz.cache_clear()
    monkeypatch.setattr(cycles, "_calibrate", lambda s: pytest.fail("calibrated again"))
    assert cycles.tsc_hz() == hz


def test_a_calibration_from_another_boot_is_ignored(fresh, monkeypatch):
    if cycles._boot_key() is None:
        pytest.skip("no boot id on this host")
    (fresh / "clock").mkdir(mode=0o700)
    (fresh / "clock" / "tsc.json").write_text(json.dumps({"key": "another boot", "hz": 1.0}))
    monkeypatch.setattr(cycles, "_calibrate", lambda s: 2.5e9)
    assert cycles.tsc_hz() == 2.5e9


def test_clock_sample_measures_the_clock_and_the_alu_probe():
    """Both figures come back in a sane range (not a performance assertion): the add chain's core cycles
    per tick, and the independent-adds probe's adds per core cycle (at most about one per integer ALU)."""
    if cycles.tsc_reader() is None or cycles._alu_probe() is None:
        pytest.skip("no TSC or no x86 JIT on this host")
    s = cycles.clock_sample(window_s=0.0002, windows=3)
    assert 0.05 < s["core_per_tsc"] < 20
    assert 0.3 < s["alu_per_cycle"] < 8.5  # low only if every window was preempted
    assert cycles._alu_probe()(7) == 7 * cycles.ALU_ROUNDS  # rax: one chain's sum, as the code is written
