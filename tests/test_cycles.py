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
