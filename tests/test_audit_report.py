"""What the audit tells a user moving to a new material: the collapse-path barrier beside the
paper's barrier, ripples below the relative tolerance, the stress-test temperature rule, the
MD check's statistical power, and where the PNG goes."""

from __future__ import annotations

import json
import math
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin.audit.dimer import (
    RELATIVE_TOLERANCE,
    DimerCurve,
    analyse_curve,
    default_distances,
    local_maxima,
)
from nepzbl_plugin.audit.distances import data_temperature
from nepzbl_plugin.audit.report import format_report, report_json
from nepzbl_plugin.audit.stress_test import (
    BOLTZMANN,
    StressTestSettings,
    crossing_probability,
    detection_power,
    stress_test,
)
from nepzbl_plugin.audit.verdict import audit


@pytest.fixture(scope="module")
def nep802():
    return audit(str(shared_file("llzo", "NEP802.txt")), hot_md=False, name="NEP802")


def _rippled_pure_curve():
    """The new user's pure model: a 0.083 eV ripple at 4.34 Å, a bonding well of -1 eV at 2.2 Å,
    a 3.80 eV maximum at 1.06 Å, then the energy falls to -2 eV at 0.1 Å (a collapse path)."""
    r = default_distances()
    ripple = 0.083 * np.exp(-(((r - 4.34) / 0.15) ** 2))
    well = -1.0 * np.exp(-(((r - 2.2) / 0.5) ** 2))
    peak = 3.81 * np.exp(-(((r - 1.06) / 0.35) ** 2))
    core = -2.2 * np.exp(-(((r - 0.1) / 0.35) ** 2))
    e = ripple + well + peak + core
    return DimerCurve(("Li", "Li"), r, e - e[-1])


# ------------------------------------------------------------------ barrier and ripples
def test_ripple_is_not_the_barrier_and_the_path_barrier_is_reported():
    curve = _rippled_pure_curve()
    k = int(np.argmin(np.abs(curve.distances - 4.34)))
    assert 0.05 < curve.energy[k] < 0.1  # above the absolute tolerance: the old audit's barrier
    # absolute tolerance only: the ripple is the first maximum, as the issue saw it
    plain = analyse_curve(curve, relative_tolerance=0.0)
    assert plain.breakdown_distance == pytest.approx(4.34, abs=0.02)
    # ... and the collapse-path barrier still names the real way in
    assert plain.path_barrier == pytest.approx(curve.energy.max(), abs=1e-12)
    assert plain.path_barrier_distance == pytest.approx(curve.distances[np.argmax(curve.energy)])
    assert 3.5 < plain.path_barrier < 4.2
    # the default relative tolerance drops the ripple: depth = highest maximum - lowest point
    a = analyse_curve(curve)
    depth = curve.energy.max() - curve.energy.min()
    assert RELATIVE_TOLERANCE * depth > curve.energy[k]
    assert a.collapse_path and len(a.local_maxima) == 1
    assert a.barrier == pytest.approx(a.path_barrier) and a.breakdown_distance < 1.2
    d = a.as_dict()
    assert d["collapse_path_barrier"] == pytest.approx(a.path_barrier)
    assert d["collapse_path_barrier_distance"] == a.path_barrier_distance


def test_relative_tolerance_in_local_maxima():
    r = default_distances()
    e = 0.1 * np.exp(-(((r - 4.0) / 0.2) ** 2)) + 3.0 * np.exp(-(((r - 1.0) / 0.2) ** 2))
    e -= e[-1]
    assert len(local_maxima(r, e, 0.05)) == 2
    assert [round(m[0], 2) for m in local_maxima(r, e, 0.05, 0.05)] == [1.0]


def test_llzo_barriers_unchanged_and_path_barrier(nep802):
    """The paper's numbers stay; the path barrier shows the higher maxima further in."""
    li = nep802.analyses["Li-Li"]
    assert li.barrier == pytest.approx(2.050, abs=5e-4) and li.breakdown_distance == 1.32
    assert li.path_barrier == pytest.approx(li.barrier)
    la = nep802.analyses["La-La"]
    assert la.barrier == pytest.approx(1.056, abs=1e-3) and la.breakdown_distance == 3.04
    assert la.path_barrier == pytest.approx(2.305, abs=1e-3)
    assert la.path_barrier_distance == pytest.approx(1.02)
    assert nep802.analyses["La-O"].path_barrier is None  # downhill all the way in
    data = json.loads(report_json(nep802))
    assert data["settings"]["relative_tolerance"] == RELATIVE_TOLERANCE
    assert data["pairs"]["La-La"]["collapse_path_barrier"] == pytest.approx(2.305, abs=1e-3)
    text = format_report(nep802)
    assert "path max" in text and "2.305 eV" in text and "downhill" in text


# ------------------------------------------------------------------ temperature rule
def _frame_at(temperature, seed):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    if temperature > 0:  # momenta scaled to exactly this kinetic temperature
        masses = atoms.get_masses()[:, None]
        momenta = np.random.default_rng(seed).normal(size=(len(atoms), 3)) * np.sqrt(masses)
        atoms.set_momenta(momenta)
        atoms.set_momenta(momenta * np.sqrt(temperature / atoms.get_temperature()))
    return atoms


def test_temperature_is_the_hottest_frame():
    """Help and behaviour agree: 1.2 x the hottest frame, not an upper quartile."""
    frames = [_frame_at(600, k) for k in range(6)] + [_frame_at(950, 9)]
    hottest = max(f.get_temperature() for f in frames)
    found, why = data_temperature(frames)
    assert found == pytest.approx(hottest, rel=1e-9) and "hottest frame" in why
    assert hottest > np.percentile([f.get_temperature() for f in frames], 75) + 100


def test_temperature_of_training_structures_given_as_objects():
    """TrainingStructure lists (the demo's and active learning's data) keep their temperature
    and config_type: the stress test runs at 1.2 x their hottest, not at the 1200 K fallback."""
    from nepzbl_plugin.io.xyz import TrainingStructure

    def structure(temperature, config_type):
        return TrainingStructure(symbols=["Cu", "Cu"], positions=[[0, 0, 0], [1.8, 0, 0]],
                                 cell=np.eye(3) * 5.0, energy=0.0, forces=np.zeros((2, 3)),
                                 temperature=temperature, config_type=config_type)

    found, why = data_temperature([structure(900.0, "md"), structure(1500.0, "md")])
    assert found == 1500.0 and "temperature" in why
    found, why = data_temperature([structure(None, "emt_md_1300K")])
    assert found == 1300.0 and "config_type" in why


def test_stress_test_says_which_rule_chose_the_temperature():
    from ase.calculators.emt import EMT

    frame = _frame_at(900, 1)
    frame.info["config_type"] = "md_900K"
    settings = StressTestSettings(steps=10, kicks_per_pair=0, sample_interval=5)
    result = stress_test(EMT(), [frame], settings, progress=False)
    assert result.temperature == pytest.approx(1080.0)
    assert "1.2 x the data's hottest, 900 K" in result.temperature_source
    fallback = stress_test(EMT(), [_frame_at(0, 1)], settings, progress=False)
    assert fallback.temperature == 1200.0 and "fallback" in fallback.temperature_source
    forced = stress_test(EMT(), [frame], StressTestSettings(temperature=500, steps=10,
                                                            kicks_per_pair=0), progress=False)
    assert "--temperature" in forced.temperature_source


def test_audit_help_states_the_rule(capsys):
    from nepzbl_plugin.cli import main

    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "1.2 x the data's hottest temperature" in out and "hottest frame's momenta" in out


# ------------------------------------------------------------------ statistical power
def test_crossing_probability():
    kT = BOLTZMANN * 1300
    assert crossing_probability(2.0, 2.0, 1300) == pytest.approx(0.5)
    x = math.sqrt(2) * (math.sqrt(2.32) - math.sqrt(2.05)) / math.sqrt(kT)
    assert crossing_probability(2.32, 2.05, 1300) == pytest.approx(
        0.5 * (1 + math.erf(x / math.sqrt(2))), rel=1e-12)
    assert crossing_probability(2.32, 0.0, 1300) > 0.999999
    assert crossing_probability(2.32, 4.78, 1300) < 0.01


def test_detection_power_counts_collisions_per_pair():
    kicks = [{"pair": p} for p in ["Li-Li", "Li-O", "Li-Li", "Li-O", "Li-Li", "Li-O"]]
    stress = SimpleNamespace(run=SimpleNamespace(kicks=kicks), kick_energy=2.32,
                             temperature=1300.0)
    power = detection_power(stress, {"Li-Li": 2.05, "O-O": 4.78, "Li-O": 0.0})
    li = power["pairs"]["Li-Li"]
    p = crossing_probability(2.32, 2.05, 1300.0)
    assert li["collisions"] == 3 and li["crossing_probability"] == pytest.approx(p)
    assert li["miss_chance"] == pytest.approx((1 - p) ** 3)
    need = li["collisions_for_miss_target"]
    assert (1 - p) ** need < 0.01 <= (1 - p) ** (need - 1)
    assert power["kicks_per_pair"] == need
    oo = power["pairs"]["O-O"]
    assert oo["collisions"] == 0 and oo["miss_chance"] == 1.0
    assert oo["collisions_for_miss_target"] is None  # too unlikely: raise the energy instead
    assert power["pairs"]["Li-O"]["miss_chance"] < 1e-6
    plain = detection_power(SimpleNamespace(run=SimpleNamespace(kicks=[]), kick_energy=None,
                                            temperature=1300.0), {"Li-Li": 2.05})
    assert plain["pairs"]["Li-Li"]["miss_chance"] == 1.0


def test_power_line_of_an_uncollided_pair_names_both_reasons():
    """A pair left out by --kick-pairs is not one "the data never bring within 4 Å"."""
    from nepzbl_plugin.audit.report import _power_lines

    stress = SimpleNamespace(run=SimpleNamespace(kicks=[{"pair": "Li-Li"}]), kick_energy=2.32,
                             temperature=1300.0)
    lines = _power_lines(detection_power(stress, {"Li-Li": 2.05, "Li-O": 0.16}))
    li_o = next(line for line in lines if line.strip().startswith("Li-O"))
    assert "0 collisions at 2.32 eV against 0.16 eV" in li_o
    assert "never bring" not in li_o and "--kick-pairs" in li_o and "within 4 Å" in li_o


def test_audit_reports_md_power(nep802):
    """A short knock-on run of the unsafe NEP802: the report gives the power per pair."""
    from ase.io import read

    data = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), index=":1")
    report = audit(str(shared_file("llzo", "NEP802.txt")), data=data, name="NEP802",
                   hot_md=StressTestSettings(temperature=1300, steps=10, kicks_per_pair=1,
                                             kick_interval=10, settle=5, sample_interval=5),
                   distances=np.round(np.arange(10, 601, 2) * 0.01, 2))
    power = json.loads(report_json(report))["hot_md"]["power"]
    assert set(power["pairs"]) == {k for k, a in report.analyses.items() if a.collapse_path}
    li = power["pairs"]["Li-Li"]
    assert li["collisions"] == 1 and li["energy_eV"] == pytest.approx(2.3215, abs=1e-3)
    assert li["barrier_eV"] == pytest.approx(report.analyses["Li-Li"].path_barrier)
    text = format_report(report)
    assert "MD power" in text and "--kicks-per-pair" in text


# ------------------------------------------------------------------ the PNG's folder
def test_png_goes_beside_the_model_or_into_out(tmp_path, monkeypatch):
    from nepzbl_plugin.cli import main

    models = tmp_path / "models"
    models.mkdir()
    model = models / "NEP802.txt"
    shutil.copy(shared_file("llzo", "NEP802.txt"), model)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["audit", str(model), "--no-md", "--json"]) == 1
    assert (models / "NEP802_dimers.png").exists() and not list(work.iterdir())
    assert main(["audit", str(model), "--no-md", "--json", "--out", str(tmp_path / "out")]) == 1
    assert (tmp_path / "out" / "NEP802_dimers.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(work.iterdir())
