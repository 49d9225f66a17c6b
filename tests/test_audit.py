"""The robustness audit: dimer curves against the NEP-ZBL paper, the collapse criterion on
synthetic and real curves, data distances, the MD monitor and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin.audit.dimer import (
    DimerCurve,
    analyse_curve,
    default_distances,
    dimer_scan,
    local_maxima,
    read_dimer_file,
)
from nepzbl_plugin.audit.distances import data_temperature, min_pair_distances, zbl_overlap
from nepzbl_plugin.audit.report import format_report, plot_dimers, report_json
from nepzbl_plugin.audit.verdict import audit, make_calculator
from nepzbl_plugin.audit.zbl import universal_zbl_energy, zbl_energy
from nepzbl_plugin.errors import NepFormatError
from nepzbl_plugin.md import partial_rdf, partial_rdf_counts, run_nvt

PAPER = {  # model, the paper's dimer file, barrier (eV), breakdown distance (Å)
    "NEPstd": ("NEPstd.txt", "dimer_nepstd_Li_Li.txt", 2.556, 1.15),
    "NEP802": ("NEP802.txt", "dimer_802_Li_Li.txt", 2.050, 1.32),
    "NEP802-ZBL": ("NEP802-ZBL.txt", "dimer_802_Li_Li_zbl.txt", None, None),
}


@pytest.fixture(scope="module")
def llzo_reports():
    """Dimer audits (no MD) of the three LLZO models, computed once."""
    reports = {}
    for key, (model, _, _, _) in PAPER.items():
        reports[key] = audit(str(shared_file("llzo", model)), hot_md=False, name=key)
    return reports


# ------------------------------------------------------------------ the paper's curves
@pytest.mark.parametrize("key", list(PAPER))
def test_li_li_dimer_matches_paper(key, llzo_reports):
    model_file, dimer_file, barrier, distance = PAPER[key]
    reference = np.loadtxt(shared_file("llzo", "dimer", dimer_file), skiprows=1)
    curve = llzo_reports[key].curves["Li-Li"]
    np.testing.assert_array_equal(curve.distances, np.round(reference[:, 0], 2))
    assert np.max(np.abs(curve.energy - reference[:, 1])) < 1e-4
    assert np.max(np.abs(curve.force - reference[:, 2])) < 1e-4
    analysis = llzo_reports[key].analyses["Li-Li"]
    if barrier is None:
        assert analysis.barrier is None and analysis.breakdown_distance is None
    else:
        assert analysis.barrier == pytest.approx(barrier, abs=5e-4)
        assert analysis.breakdown_distance == pytest.approx(distance, abs=1e-9)


def test_read_dimer_file_round_trip(tmp_path, llzo_reports):
    curve = llzo_reports["NEP802"].curves["Li-La"]
    path = tmp_path / "dimer.txt"
    curve.write(path)
    back = read_dimer_file(path, ("Li", "La"))
    np.testing.assert_allclose(back.energy, curve.energy, atol=1e-6)
    np.testing.assert_allclose(back.force, curve.force, atol=1e-6)


def test_read_dimer_file_errors(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("Distance Energy\n0.1 1.0\n0.2 abc\n0.3 1\n")
    with pytest.raises(NepFormatError, match="line 3"):
        read_dimer_file(path)
    path.write_text("0.1 1.0\n")
    with pytest.raises(NepFormatError, match="at least 3 rows"):
        read_dimer_file(path)


# ------------------------------------------------------------------ verdict on the models
def test_llzo_verdicts(llzo_reports):
    assert not llzo_reports["NEPstd"].safe
    assert not llzo_reports["NEP802"].safe
    assert llzo_reports["NEP802-ZBL"].safe
    for key in ("NEPstd", "NEP802"):
        # every pair of the pure models has a collapse path: the wall reaches < 1 % of ZBL
        for analysis in llzo_reports[key].analyses.values():
            assert analysis.collapse_path and analysis.wall_ratio < 0.01
    for name, analysis in llzo_reports["NEP802-ZBL"].analyses.items():
        assert not analysis.collapse_path and analysis.wall_ratio > 0.9, name
    zbl = llzo_reports["NEP802-ZBL"].analyses
    # the walled barriers of the ZBL model: a maximum near 2-2.5 Å, a shallow dip, then the wall
    assert zbl["La-Zr"].barrier == pytest.approx(2.367, abs=1e-3)
    assert zbl["La-Zr"].breakdown_distance == pytest.approx(2.52)
    assert 0.1 < zbl["La-Zr"].dip_depth < 0.5
    assert zbl["Li-La"].breakdown_distance == pytest.approx(2.01)
    # NEP802-ZBL's 3 meV ripple at 4.5 Å and the 0.8 meV shoulder of O-O are not maxima
    assert zbl["Li-Li"].local_maxima == [] and zbl["O-O"].local_maxima == []
    # a pure model with a second, higher maximum further in: the barrier is the outer one
    nep802 = llzo_reports["NEP802"].analyses["La-Zr"]
    assert nep802.breakdown_distance == pytest.approx(2.44)
    assert max(e for _, e in nep802.local_maxima) == pytest.approx(4.948, abs=1e-3)


def test_zbl_part_is_split_off(llzo_reports):
    curve = llzo_reports["NEP802-ZBL"].curves["Li-Li"]
    expected = zbl_energy(curve.distances, "Li", "Li", 0.9, 1.8)
    np.testing.assert_allclose(curve.energy_zbl, expected - expected[-1], atol=1e-12)
    np.testing.assert_allclose(curve.energy_nep + curve.energy_zbl, curve.energy, atol=1e-12)
    assert llzo_reports["NEP802"].curves["Li-Li"].energy_zbl is None


def test_json_and_table(llzo_reports, tmp_path):
    report = llzo_reports["NEPstd"]
    data = json.loads(report_json(report))
    assert data["safe"] is False
    assert set(data["pairs"]) == {"Li-Li", "Li-La", "Li-Zr", "Li-O", "La-La", "La-Zr", "La-O",
                                  "Zr-Zr", "Zr-O", "O-O"}
    assert data["pairs"]["Li-Li"]["barrier"] == pytest.approx(2.556, abs=5e-4)
    assert data["pairs"]["Li-Li"]["breakdown_distance"] == 1.15
    assert data["pairs"]["Zr-Zr"]["barrier"] is None
    zbl = json.loads(report_json(llzo_reports["NEP802-ZBL"]))
    assert zbl["safe"] is True and zbl["pairs"]["Li-Li"]["barrier"] is None
    text = format_report(report)
    assert "verdict: UNSAFE" in text and "2.556 eV" in text and "1.15 Å" in text
    png = tmp_path / "dimers.png"
    plot_dimers(report, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json(tmp_path, capsys):
    from nepzbl_plugin.cli import main

    model = shared_file("llzo", "NEP802.txt")
    png = tmp_path / "d.png"
    status = main(["audit", str(model), "--no-md", "--json", "--png", str(png),
                   "--dimer-dir", str(tmp_path / "curves")])
    data = json.loads(capsys.readouterr().out)
    assert status == 1 and data["safe"] is False
    assert data["pairs"]["Li-Li"]["barrier"] == pytest.approx(2.050, abs=5e-4)
    assert data["pairs"]["Li-Li"]["breakdown_distance"] == 1.32
    assert png.exists() and (tmp_path / "curves" / "dimer_Li_Li.txt").exists()


# ------------------------------------------------------------------ criterion, synthetic
def _curve(energy_fn, species=("Li", "Li")):
    r = default_distances()
    e = energy_fn(r)
    return DimerCurve(species, r, e - e[-1])


def _bump(r, centre, height, width):
    return height * np.exp(-((r - centre) / width) ** 2)


def test_pure_nep_like_curve_is_a_collapse_path():
    # a barrier of 2 eV at 1.2 Å, then the curve sags to 0.5 eV at 0.1 Å
    curve = _curve(lambda r: _bump(r, 1.2, 2.0, 0.5) + 0.5 * np.exp(-r))
    a = analyse_curve(curve)
    assert a.barrier == pytest.approx(2.0 + 0.5 * np.exp(-1.2), abs=0.02)
    assert a.breakdown_distance == pytest.approx(1.2, abs=0.02)
    assert a.collapse_path and not a.safe


def test_walled_barrier_is_safe():
    # a maximum at 2.3 Å, a dip of ~0.3 eV, then the ZBL wall: the LLZO ZBL models' La-Zr
    curve = _curve(lambda r: _bump(r, 2.3, 1.0, 0.35) - _bump(r, 1.7, 0.6, 0.3)
                   + universal_zbl_energy(r, "La", "Zr") * (r < 1.5), ("La", "Zr"))
    a = analyse_curve(curve)
    assert a.barrier is not None and 0.9 < a.barrier < 1.1
    assert a.breakdown_distance == pytest.approx(2.3, abs=0.05)
    assert a.dip_depth > 0.1
    assert not a.collapse_path and a.wall_ratio > 0.9


def test_ripples_below_tolerance_are_not_maxima():
    curve = _curve(lambda r: universal_zbl_energy(r, "Li", "Li") + _bump(r, 4.5, 0.003, 0.1))
    a = analyse_curve(curve)
    assert a.local_maxima == [] and a.barrier is None and not a.collapse_path
    # with a tolerance below the ripple it counts
    assert analyse_curve(curve, tolerance=0.001).breakdown_distance == pytest.approx(4.5, abs=0.02)


def test_no_barrier_but_attractive_core_is_a_collapse_path():
    curve = _curve(lambda r: -2.0 * np.exp(-r))
    a = analyse_curve(curve)
    assert a.barrier is None and a.collapse_path


def test_second_higher_maximum_does_not_become_the_barrier():
    curve = _curve(lambda r: _bump(r, 1.3, 2.0, 0.25) + _bump(r, 0.45, 4.4, 0.1))
    a = analyse_curve(curve)
    assert a.breakdown_distance == pytest.approx(1.3, abs=0.01)
    assert [round(x, 2) for x, _ in a.local_maxima] == [1.3, 0.45]
    assert a.collapse_path


def test_local_maxima_flat_top_and_edges():
    r = np.arange(10) * 0.1 + 0.1
    e = np.array([0.0, 0.3, 1.0, 1.0, 1.0, 0.2, 0.1, 0.5, 0.2, 0.0])
    found = local_maxima(r, e, 0.05)
    assert [round(x, 2) for x, _, _ in found] == [0.8, 0.4]
    assert found[0][2] == pytest.approx(0.4)  # dip from 0.5 to 0.1 before the curve climbs over


# ------------------------------------------------------------------ any ASE calculator
def test_dimer_scan_with_any_calculator():
    from ase.calculators.lj import LennardJones

    calc = LennardJones(sigma=2.0, epsilon=0.1, rc=5.0, smooth=True)
    curve = dimer_scan(calc, "Ar", "Ar", np.linspace(1.8, 5.0, 81))
    assert curve.energy[-1] == 0.0 and curve.energy_zbl is None
    rmin = 2.0 * 2 ** (1 / 6)
    k = np.argmin(curve.energy)
    assert curve.distances[k] == pytest.approx(rmin, abs=0.05)
    # force on the second atom = -dE/dr (central differences)
    h = 1e-5
    for r in (2.0, 2.5, 3.5):
        fd = dimer_scan(calc, "Ar", "Ar", [r - h, r, r + h, 6.0])
        assert fd.force[1] == pytest.approx(-(fd.energy[2] - fd.energy[0]) / (2 * h), rel=1e-6)


# ------------------------------------------------------------------ data
def test_min_pair_distances_periodic():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    symbols = atoms.get_chemical_symbols()
    symbols[0] = "Ni"
    atoms.set_chemical_symbols(symbols)
    found = min_pair_distances([atoms], ["Cu", "Ni"])
    nn = 3.6 / np.sqrt(2)
    assert found["Cu-Cu"] == pytest.approx(nn)
    assert found["Cu-Ni"] == pytest.approx(nn)
    assert found["Ni-Ni"] == pytest.approx(7.2 / np.sqrt(2)) or found["Ni-Ni"] is None


def test_data_temperature_sources():
    from ase.build import bulk

    a = bulk("Cu", cubic=True)
    a.info["config_type"] = "md_900K"
    b = bulk("Cu", cubic=True)
    b.info["temperature"] = 1100.0
    assert data_temperature([a])[0] == 900.0
    assert data_temperature([a, b])[0] == 1100.0
    assert data_temperature([bulk("Cu", cubic=True)])[0] is None
    val = shared_file("llzo", "validation", "val_1200.xyz")
    temperature, source = data_temperature(val)
    assert 1100 < temperature < 1400 and "momenta" in source


def test_zbl_overlap_llzo():
    from nepzbl_plugin import read_model

    model = read_model(shared_file("llzo", "NEP802-ZBL.txt"))
    dmin = min_pair_distances(shared_file("llzo", "NEP25-ZBL", "train.xyz"), model.types)
    assert dmin["Li-Li"] == pytest.approx(1.5757, abs=1e-3)
    assert dmin["Zr-Zr"] is None  # never within 4 Å
    overlap = zbl_overlap(model, dmin)
    assert overlap["Li-Li"].reaches_into_data and overlap["Li-O"].reaches_into_data
    assert not overlap["La-La"].reaches_into_data
    assert overlap["Li-Li"].zbl_outer == pytest.approx(1.8)


# ------------------------------------------------------------------ MD helpers
def test_partial_rdf_counts_neighbours():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    bins, r_max = 300, 3.0
    counts = partial_rdf_counts(atoms, ["Cu"], r_max, bins)
    r, g = partial_rdf(counts, atoms, ["Cu"], r_max, bins, frames=1)
    dr = r_max / bins
    rho = len(atoms) / atoms.get_volume()
    coordination = np.sum(g["Cu-Cu"] * rho * 4 * np.pi * r**2 * dr)
    assert coordination == pytest.approx(12.0, rel=0.02)


def test_run_nvt_monitor():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    quiet = run_nvt(atoms, EMT(), 600.0, 40, sample_interval=10, collapse_distances=1.0,
                    progress=False)
    assert quiet.collapsed_fraction == 0.0 and quiet.collapse_onset is None
    assert quiet.times.tolist() == [10.0, 20.0, 30.0, 40.0]
    assert 2.0 < quiet.min_distance.min() < 2.6
    # every sample "collapses" with a collapse distance above the nearest-neighbour distance
    loud = run_nvt(atoms, EMT(), 600.0, 40, sample_interval=10, collapse_distances=3.0,
                   progress=False)
    assert loud.collapsed_fraction == 1.0 and loud.collapse_onset == 10.0


def test_audit_with_data_runs_md(tmp_path):
    """A full audit with data on a tiny set: distance check and a short stress test."""
    from ase.io import read

    data = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), index=":2")
    from nepzbl_plugin.audit.stress_test import StressTestSettings

    report = audit(str(shared_file("llzo", "NEP802-ZBL.txt")), data=data,
                   hot_md=StressTestSettings(temperature=900, steps=20, sample_interval=10),
                   distances=np.round(np.arange(10, 601, 10) * 0.01, 2))
    assert report.checks["hot_md"].status == "pass"
    d = json.loads(report_json(report))
    assert d["hot_md"]["temperature_K"] == 900 and d["hot_md"]["collapsed_fraction"] == 0.0
    li_li = d["pairs"]["Li-Li"]
    assert li_li["zbl_outer"] == pytest.approx(1.8)
    assert li_li["zbl_reaches_into_data"] is (li_li["data_min_distance"] < 1.8)
    reach = any(p["zbl_reaches_into_data"] for p in d["pairs"].values())
    assert report.checks["zbl_vs_data"].status == ("warn" if reach else "pass")


def test_make_calculator_from_model_object():
    from nepzbl_plugin import read_model

    path = shared_file("llzo", "NEP802-ZBL.txt")
    a = dimer_scan(make_calculator(read_model(path)), "Li", "O", [1.0, 2.0, 6.0])
    b = dimer_scan(make_calculator(str(path)), "Li", "O", [1.0, 2.0, 6.0])
    np.testing.assert_allclose(a.energy, b.energy, atol=1e-9)


def test_audit_refuses_data_with_unknown_species():
    from ase.build import bulk

    from nepzbl_plugin.errors import NepzblError

    with pytest.raises(NepzblError, match="Cu"):
        audit(str(shared_file("llzo", "NEP802.txt")), data=[bulk("Cu")], hot_md=False,
              distances=[1.0, 2.0, 6.0])


def test_rattled_stress_test_separates_nep802_from_nep802_zbl():
    """A thermal spike (start rattled by 0.35 Å) lets NEP802's Li atoms fall onto each other
    within a few fs, as in the paper's hot MD; the ZBL wall of NEP802-ZBL pushes them apart."""
    from ase.io import read

    from nepzbl_plugin.audit.stress_test import StressTestSettings, stress_test

    data = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), index=":")
    settings = StressTestSettings(temperature=1300, steps=60, sample_interval=10, rattle=0.35)
    results = {}
    for name in ("NEP802", "NEP802-ZBL"):
        calc = make_calculator(str(shared_file("llzo", f"{name}.txt")), num_threads=1)
        results[name] = stress_test(calc, data, settings, progress=False)
    pure, walled = results["NEP802"], results["NEP802-ZBL"]
    assert not pure.passed and pure.collapsed_fraction > 0.5
    assert pure.run.min_distance.min() < 0.6
    assert walled.passed and walled.run.min_distance.min() > 1.0
    assert "rattled by 0.35" in pure.temperature_source


# ------------------------------------------------------------------ knock-on collisions
def test_knock_on_energy_is_kT_ln_attempts():
    from nepzbl_plugin.audit.stress_test import knock_on_energy

    kT = 8.617333262e-5 * 1300.0
    # 1e13 /s x 1e5 atom ns x 1e-9 s/ns = 1e9 attempts: E* = kT ln 1e9 = 20.72 kT = 2.3215 eV
    assert knock_on_energy(1300.0) == pytest.approx(kT * np.log(1e9), rel=1e-12)
    assert knock_on_energy(1300.0) == pytest.approx(2.3215, abs=1e-4)
    assert knock_on_energy(1000.0, 1e3) == pytest.approx(8.617333262e-2 * np.log(1e7), rel=1e-12)
    with pytest.raises(ValueError):
        knock_on_energy(0.0)


def test_knock_on_conserves_momentum_and_sets_the_collision_energy():
    from ase.build import bulk

    from nepzbl_plugin.md import knock_on

    atoms = bulk("NiCu", "rocksalt", a=4.0).repeat(2)  # Ni and Cu, different masses
    rng = np.random.default_rng(3)
    atoms.set_velocities(rng.normal(0.0, 0.01, (len(atoms), 3)))
    before = atoms.get_momenta().sum(axis=0)
    event = knock_on(atoms, "Ni", "Cu", 2.5, rng)
    i, j = event["atoms"]
    assert atoms[i].symbol == "Ni" and atoms[j].symbol == "Cu"
    # j is the nearest Cu of i
    d = atoms.get_distances(i, [k for k, a in enumerate(atoms) if a.symbol == "Cu"], mic=True)
    assert event["distance"] == pytest.approx(d.min()) == pytest.approx(2.0)
    np.testing.assert_allclose(atoms.get_momenta().sum(axis=0), before, atol=1e-12)
    bond = atoms.get_distance(i, j, mic=True, vector=True) / event["distance"]
    v = atoms.get_velocities()
    m = atoms.get_masses()
    mu = m[i] * m[j] / (m[i] + m[j])
    approach = (v[i] - v[j]) @ bond  # > 0: moving towards each other
    assert approach > 0
    assert 0.5 * mu * approach**2 == pytest.approx(2.5, rel=1e-12)
    assert knock_on(bulk("Cu"), "Cu", "Cu", 1.0, rng) is None  # no second Cu atom
    assert knock_on(atoms, "Ag", "Cu", 1.0, rng) is None


def test_collision_transients_do_not_count():
    """A 12 eV Cu-Cu collision in EMT copper brings the pair to about 1.55 Å for a few fs (the
    nearest-neighbour distance is 2.55 Å); the samples in the settle window are recorded but do
    not count, and once the collision has spread out no pair is that close."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from nepzbl_plugin.md import KnockOns

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    kicks = KnockOns(pairs=["Cu-Cu"], energy=12.0, first=20, interval=100, settle=60)
    run = run_nvt(atoms, EMT(), 300.0, 20, sample_interval=2, collapse_distances=1.9,
                  progress=False, knock_ons=kicks, seed=1)
    assert run.steps_done == 120 and len(run.kicks) == 1
    transient = ~run.counted
    assert transient.sum() == 29  # samples at 22..78 fs: less than 60 fs after the kick
    assert run.min_distance[transient].min() < 1.7  # the collision itself came close ...
    assert run.min_distance[run.counted].min() > 1.95  # ... and the pair bounced back
    assert run.collapsed.any() and run.collapsed_fraction == 0.0 and run.collapse_onset is None
    kick = run.kicks[0]
    assert kick["time_fs"] == 20.0 and kick["collapsed_after"] == []
    assert kick["distance_after"] > 2.5


def test_knock_on_stress_test_separates_nep802_from_nep802_zbl():
    """Head-on Li-Li and Li-La collisions at the default energy (2.32 eV at 1300 K) make NEP802's
    Li fall onto Li or La, as in the paper's hot MD (Li-Li g(r) peak at 0.13 Å); NEP802-ZBL's
    wall sends them back. Each collision collapses NEP802 with probability about 0.55, so eight
    miss with probability below 0.2 %."""
    from ase.io import read

    from nepzbl_plugin.audit.stress_test import StressTestSettings, stress_test

    data = read(shared_file("llzo", "NEP25-ZBL", "train.xyz"), index=":")
    settings = StressTestSettings(temperature=1300, steps=200, kicks_per_pair=4,
                                  kick_pairs=["La-Li", "Li-Li"], seed=7)
    results = {}
    for name in ("NEP802", "NEP802-ZBL"):
        calc = make_calculator(str(shared_file("llzo", f"{name}.txt")), num_threads=1)
        results[name] = stress_test(calc, data, settings, progress=False)
    pure, walled = results["NEP802"], results["NEP802-ZBL"]
    for result in (pure, walled):
        d = result.as_dict()
        assert d["knock_on"]["energy_eV"] == pytest.approx(2.3215, abs=1e-4)
        assert d["knock_on"]["pairs"] == ["Li-La", "Li-Li"]
        assert d["knock_on"]["collisions"] == 8 and d["steps"] == 200 + 8 * 200
    first = pure.as_dict()["knock_on"]["first_collapse_after"]
    assert not pure.passed and first["pair"] in ("Li-La", "Li-Li")
    assert first["time_fs"] < pure.collapse_onset <= first["time_fs"] + 200
    assert pure.as_dict()["min_distance"] < 0.6
    assert walled.passed and walled.as_dict()["min_distance"] > 1.2
    assert walled.as_dict()["knock_on"]["first_collapse_after"] is None


@pytest.mark.parametrize("option, message", [
    (["--kick-pairs", "Li-Cu"], "Li-Cu"),
    (["--kick-energy", "-1"], "kick_energy must be > 0 eV"),
    (["--horizon", "0"], "horizon must be > 0"),
    (["--temperature", "-5"], "temperature must be > 0 K"),
])
def test_cli_rejects_bad_stress_test_options(capsys, option, message):
    from nepzbl_plugin.cli import main

    status = main(["audit", str(shared_file("llzo", "NEP802.txt")), "--png", "none", *option])
    assert status == 2
    assert message in capsys.readouterr().err


def test_knock_on_refuses_a_non_positive_energy():
    from ase.build import bulk

    from nepzbl_plugin.md import knock_on

    with pytest.raises(ValueError, match="positive collision energy"):
        knock_on(bulk("Cu", cubic=True), "Cu", "Cu", 0.0, np.random.default_rng(0))
