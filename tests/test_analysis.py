"""nepzbl_plugin.analysis on synthetic data with known answers, and ``nepzbl analyze``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from nepzbl_plugin.analysis import (
    MSD,
    RDF,
    AnalysisError,
    Arrhenius,
    DescriptorMap,
    LatticeTemperature,
    Locality,
    MinPairDistances,
    NotComputedError,
    nernst_einstein,
    pair_key,
    pair_min_distances,
    pair_names,
    pca,
    unwrap,
)
from nepzbl_plugin.analysis._base import KB_EV_PER_K
from nepzbl_plugin.analysis.msd import msd_per_axis
from nepzbl_plugin.cli import main


def _gas(n: int, box: float, rng, symbols=("Li", "O")) -> Atoms:
    names = [symbols[k % len(symbols)] for k in range(n)]
    return Atoms(names, positions=rng.uniform(0, box, (n, 3)), cell=[box] * 3, pbc=True)


def _crystal(repeat: int, a: float, seed: int, symbols=("Li", "O"), rattle: float = 0.1,
             structure: str = "bcc") -> Atoms:
    """A rattled cubic crystal (bcc or fcc) with the species alternating over the atoms."""
    atoms = bulk("Li", structure, a=a, cubic=True).repeat((repeat,) * 3)
    atoms.set_chemical_symbols([symbols[k % len(symbols)] for k in range(len(atoms))])
    atoms.rattle(rattle, seed=seed)
    return atoms


# ------------------------------------------------------------------------------- pairs
def test_pair_names_follow_the_species_order():
    assert pair_key("O", "Li", ["Li", "O"]) == "Li-O"
    assert pair_key("Li", "O", ["O", "Li"]) == "O-Li"
    assert pair_names(["Li", "La", "O"]) == ["Li-Li", "Li-La", "Li-O", "La-La", "La-O", "O-O"]


def _structures():
    rng = np.random.default_rng(3)
    rocksalt = bulk("LiF", "rocksalt", a=4.03).repeat((2, 1, 1))
    rocksalt.rattle(0.05, seed=1)
    gas = _gas(30, 7.0, rng, ("Li", "La", "O"))
    water = molecule("H2O")  # no cell, no periodicity
    return [rocksalt, gas, water]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_pair_min_distances_equal_md_and_audit(index):
    from nepzbl_plugin import md
    from nepzbl_plugin.audit.distances import min_pair_distances

    atoms = _structures()[index]
    species = list(dict.fromkeys(atoms.get_chemical_symbols()))[::-1]
    for cutoff in (2.0, 4.0):
        ours = pair_min_distances(atoms, species, cutoff)
        assert ours == md.pair_min_distances(atoms, species, cutoff)
        audit = min_pair_distances([atoms], species, cutoff)
        assert {k: (None if np.isinf(v) else v) for k, v in ours.items()} == audit


def test_pair_min_distances_over_frames_and_accumulator():
    from nepzbl_plugin.audit.distances import min_pair_distances

    frames = _structures()[:2]
    species = ["Li", "F", "La", "O"]
    ours = pair_min_distances(frames, species, 4.0)
    assert {k: (None if np.isinf(v) else v) for k, v in ours.items()} == \
        min_pair_distances(frames, species, 4.0)
    running = MinPairDistances(species, 4.0)
    with pytest.raises(NotComputedError):
        _ = running.distances
    for atoms in frames:
        running.accumulate(atoms)
    assert running.distances == ours
    assert running.compute(frames[1]).distances == pair_min_distances(frames[1], species, 4.0)


# ------------------------------------------------------------------------- results before compute
@pytest.mark.parametrize("make, name", [
    (lambda: RDF(), "rdf"), (lambda: MSD(1.0), "diffusion"),
    (lambda: Arrhenius(), "activation_energy"),
    (lambda: LatticeTemperature(), "transition_temperature"),
    (lambda: Locality([1.0]), "force_std"), (lambda: DescriptorMap(), "embedding"),
])
def test_results_refuse_to_be_read_before_compute(make, name):
    analysis = make()
    with pytest.raises(NotComputedError, match="compute"):
        getattr(analysis, name)
    assert "not computed" in repr(analysis)


# ------------------------------------------------------------------------------- RDF
def test_ideal_gas_rdf_is_one():
    rng = np.random.default_rng(0)
    frames = [_gas(300, 12.0, rng) for _ in range(40)]
    rdf = RDF(r_max=5.0, bins=25, species=["Li", "O"]).compute(frames)
    assert list(rdf.rdf) == ["Li-Li", "Li-O", "O-O"]
    assert rdf.frames == 40
    for key, g in rdf.rdf.items():
        far = g[rdf.bin_centers > 1.5]
        # each bin holds >= 1e4 pairs: 3 % is several standard deviations
        assert np.all(np.abs(far - 1.0) < 0.06), key
        assert abs(far.mean() - 1.0) < 0.01, key


def test_rdf_refuses_sizes_that_would_run_for_hours():
    """--r-max 1e9 --bins 1e9 used to run until killed: both are one AnalysisError now, the
    pair count before the pair list is built."""
    rng = np.random.default_rng(0)
    with pytest.raises(AnalysisError, match="bins <= 1000000"):
        RDF(r_max=5.0, bins=10**9)
    with pytest.raises(AnalysisError, match="finite r_max"):
        RDF(r_max=float("inf"))
    with pytest.raises(AnalysisError, match=r"r_max 1000 Å gives about 2.2e\+11 pairs per "
                                            r"frame of 300 atoms"):
        RDF(r_max=1000.0, bins=10).compute([_gas(300, 12.0, rng)])


def test_rdf_accumulate_matches_compute_and_md():
    from nepzbl_plugin import md

    rng = np.random.default_rng(1)
    frames = [_gas(40, 6.0, rng) for _ in range(3)]
    whole = RDF(3.0, 30).compute(frames)
    stepwise = RDF(3.0, 30)
    for atoms in frames:
        stepwise.accumulate(atoms)
    for key in whole.rdf:
        np.testing.assert_allclose(stepwise.rdf[key], whole.rdf[key], rtol=1e-12)
    counts = None
    for atoms in frames:
        c = md.partial_rdf_counts(atoms, ["Li", "O"], 3.0, 30)
        counts = c if counts is None else {k: counts[k] + v for k, v in c.items()}
    _, g = md.partial_rdf(counts, frames[0], ["Li", "O"], 3.0, 30, 3)
    for key in g:  # constant volume: the same normalisation
        np.testing.assert_allclose(whole.rdf[key], g[key], rtol=1e-12)


# ------------------------------------------------------------------------------- MSD
def _random_walk(D_axis, frames, atoms, dt, seed=0):
    """Gaussian steps with variance 2 D dt per axis (D in Å²/fs)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(frames, atoms, 3)) * np.sqrt(2.0 * np.asarray(D_axis) * dt)
    return np.cumsum(steps, axis=0)


def test_msd_fft_equals_direct_average():
    positions = _random_walk([0.1, 0.2, 0.3], 40, 5, 1.0)
    fast = msd_per_axis(positions, 15)
    direct = np.array([[np.mean((positions[m:, :, a] - positions[:40 - m, :, a]) ** 2)
                        for a in range(3)] for m in range(15)])
    np.testing.assert_allclose(fast, direct, atol=1e-12)


def test_random_walk_diffusion_within_block_error():
    D_axis = np.array([0.02, 0.05, 0.08])  # Å²/fs
    dt = 2.0
    positions = _random_walk(D_axis, 3000, 60, dt)
    symbols = ["Li"] * 40 + ["La"] * 20
    msd = MSD(dt, window_fs=400.0, blocks=5).compute_arrays(positions, symbols, dt)
    expected = D_axis.mean() * 0.1  # cm²/s
    for s in ("Li", "La"):
        D, error = msd.diffusion[s], msd.diffusion_error[s]
        assert 0 < error < 0.2 * expected
        assert abs(D - expected) < 4 * error, (s, D, error, expected)
        np.testing.assert_allclose(msd.diffusion_axis[s], D_axis * 0.1, rtol=0.2)
    assert msd.fit_range_fs == (0.0, 200.0)
    assert msd.lag_times_fs[-1] == pytest.approx(400.0)


def test_wrapped_frames_are_unwrapped_and_time_comes_from_info():
    dt, box = 5.0, 6.0
    positions = _random_walk([0.05] * 3, 400, 8, dt, seed=4)
    frames = []
    for k, p in enumerate(positions):
        atoms = Atoms(["Li"] * 8, positions=p, cell=[box] * 3, pbc=True)
        atoms.wrap()
        atoms.info["time_fs"] = k * dt
        frames.append(atoms)
    cells = np.array([a.cell.array for a in frames])
    unwrapped = unwrap(np.array([a.positions for a in frames]), cells)
    assert np.ptp(positions) > 2 * box  # the walk crosses the cell many times
    np.testing.assert_allclose(unwrapped - unwrapped[0], positions - positions[0], atol=1e-9)
    from_frames = MSD(window_fs=200.0).compute(frames)
    direct = MSD(dt, window_fs=200.0).compute_arrays(positions, ["Li"] * 8, dt)
    assert from_frames.diffusion["Li"] == pytest.approx(direct.diffusion["Li"], rel=1e-9)


def test_msd_refuses_bad_input():
    positions = _random_walk([0.05] * 3, 20, 2, 1.0)
    with pytest.raises(AnalysisError, match="Na"):
        MSD(1.0, species=["Na"]).compute_arrays(positions, ["Li", "Li"], 1.0)
    with pytest.raises(AnalysisError, match="two"):
        MSD(1.0, window_fs=15.0).compute_arrays(positions, ["Li", "Li"], 1.0)
    frames = [Atoms("Li", cell=[3] * 3, pbc=True) for _ in range(4)]
    with pytest.raises(AnalysisError, match="dt-frame"):
        MSD().compute(frames)


def test_nernst_einstein_by_hand():
    # 100 Li+ in 1e4 Å³ (1e22 /cm³), D 1e-5 cm²/s, 1000 K
    expected = 1e22 * (1.602176634e-19) ** 2 * 1e-5 / (1.380649e-23 * 1000.0)
    assert nernst_einstein(1e-5, 100, 1e4, 1000.0, 1.0) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.1859, rel=1e-3)  # S/cm


# ------------------------------------------------------------------------------- Arrhenius
def test_exact_arrhenius_law_is_recovered():
    Ea, D0 = 0.42, 3.0e-3
    T = np.array([700.0, 800.0, 900.0, 1000.0, 1200.0])
    D = D0 * np.exp(-Ea / (KB_EV_PER_K * T))
    fit = Arrhenius().compute(T, D)
    assert fit.activation_energy == pytest.approx(Ea, rel=1e-10)
    assert fit.prefactor == pytest.approx(D0, rel=1e-9)
    assert fit.activation_energy_error < 1e-8
    room, room_error = fit.extrapolate(300.0)
    assert room == pytest.approx(D0 * np.exp(-Ea / (KB_EV_PER_K * 300.0)), rel=1e-8)
    weighted = Arrhenius().compute(T, D, 0.05 * D)
    assert weighted.activation_energy == pytest.approx(Ea, rel=1e-10)
    # 5 % errors on D at these temperatures: Ea known to about 0.01 eV
    assert 0.003 < weighted.activation_energy_error < 0.03


def test_two_unweighted_points_have_no_error_rather_than_nan():
    """Two points fix the line: Ea and D0 exact, their errors None (were NaN), and the plot
    label and the CLI say so without a ± NaN."""
    from nepzbl_plugin.analysis.plots import _ea_label

    fit = Arrhenius().compute([800.0, 1000.0], [1e-6, 4e-6])
    ea = KB_EV_PER_K * np.log(4.0) / (1 / 800.0 - 1 / 1000.0)
    assert fit.activation_energy == pytest.approx(ea, rel=1e-12)
    assert fit.activation_energy_error is None and fit.prefactor_error is None
    value, error = fit.extrapolate(300.0)
    assert np.isfinite(value) and error is None
    out = fit.as_dict()
    assert out["Ea_error_eV"] is None and out["D_room_error"] is None
    assert _ea_label(fit.activation_energy, None) == f"Ea = {ea:.3f} eV"


def test_small_analysis_helpers_refuse_what_gave_nan_inf_or_a_traceback():
    from ase import Atoms

    from nepzbl_plugin.analysis import locality_radius

    atoms = Atoms("LiO", positions=[[0, 0, 0], [1.5, 0, 0]], cell=[5, 5, 5], pbc=True)
    for cutoff in (-1.0, 0.0, float("nan")):  # found no pair: "inf" for every pair
        with pytest.raises(AnalysisError, match="search cutoff must be a positive"):
            pair_min_distances(atoms, ["Li", "O"], cutoff)
    cells = np.array([np.eye(3) * 5, np.zeros((3, 3))])  # LinAlgError before
    with pytest.raises(AnalysisError, match="frame 1: the cell is singular"):
        unwrap(np.zeros((2, 1, 3)), cells)
    with pytest.raises(AnalysisError, match="volume must be a positive"):  # ZeroDivisionError
        nernst_einstein(1e-6, 10, 0.0, 600.0, 1.0)
    with pytest.raises(AnalysisError, match="frame 1: the lattice lengths must be positive"):
        LatticeTemperature().compute([300.0, 400.0], [[5.0, 5.0, 5.0], [0.0, 5.0, 5.0]])
    for bad in (0, -2, 1.5, True):  # odd shapes or a TypeError deep in numpy
        with pytest.raises(AnalysisError, match="n_components must be a whole number >= 1"):
            DescriptorMap(n_components=bad)
    with pytest.raises(AnalysisError, match="needs a NEP Model"):  # AttributeError before
        locality_radius(3)


def test_arrhenius_refuses_bad_input():
    with pytest.raises(AnalysisError):
        Arrhenius().compute([800.0], [1e-6])
    with pytest.raises(AnalysisError):
        Arrhenius().compute([800.0, 900.0], [1e-6, -1.0])


# ------------------------------------------------------------------------------- lattice
def test_lattice_transition_at_the_c_over_a_crossing():
    T = np.repeat(np.arange(600.0, 1201.0, 50.0), 4)
    a = 13.0 + 1e-4 * (T - 600.0)
    ratio = np.where(T < 900.0, 0.97 + 0.03 * (T - 600.0) / 300.0, 1.0)
    cells = np.array([np.diag([2 * x, 2 * x, 2 * x * r]) for x, r in zip(a, ratio, strict=True)])
    lattice = LatticeTemperature((2, 2, 2), bin_width=50.0, tolerance=0.005).compute(T, cells)
    np.testing.assert_allclose(lattice.lattice[:, 0], 13.0 + 1e-4 * (lattice.temperatures - 600))
    # |c/a - 1| = 0.005 at 850 K on the linear part
    assert lattice.transition_temperature == pytest.approx(850.0, abs=1e-6)
    tetragonal = LatticeTemperature(tolerance=0.005).compute(T[T < 800], cells[T < 800] / 2)
    assert tetragonal.transition_temperature is None
    assert "tetragonal" in tetragonal.transition_note


# ------------------------------------------------------------------------------- locality
def test_locality_of_a_pair_potential_is_its_cutoff():
    from ase.calculators.lj import LennardJones

    rc, amplitude = 4.0, 0.1
    atoms = _crystal(3, 4.0, seed=5, symbols=("Ar",), rattle=0.3, structure="fcc")
    calculator = LennardJones(sigma=3.0, epsilon=0.01, rc=rc)
    test = Locality([rc - 0.6, rc - 0.3, rc + amplitude + 1e-6, rc + 1.0], amplitude=amplitude,
                    samples=4, seed=1).compute(atoms, calculator)
    assert np.all(test.moved_atoms > 0)
    assert np.all(test.force_max[:2] > 1e-6)
    assert np.all(test.force_max[2:] == 0.0)
    assert test.apparent_radius() == pytest.approx(rc + amplitude + 1e-6)
    again = Locality(test.radii, amplitude=amplitude, samples=4, seed=1).compute(atoms, calculator)
    np.testing.assert_array_equal(again.force_std, test.force_std)


def test_locality_of_nep_is_twice_its_cutoff():
    from nepzbl_plugin.analysis import locality_radius
    from nepzbl_plugin.calculators import NEP
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Li", "O"), cutoffs=(3.0, 2.5))
    assert locality_radius(model) == 6.0
    atoms = _crystal(5, 3.0, seed=2)
    amplitude = 0.1
    test = Locality([2.5, 4.0, 5.5, 6.0 + amplitude, 6.6], amplitude=amplitude, samples=3,
                    seed=0).compute(atoms, NEP(model))
    # between rc and 2 rc the force still feels the moved atoms: NEP is many-body
    assert np.all(test.force_max[:3] > 1e-8)
    assert np.all(test.force_max[3:] == 0.0)


# ------------------------------------------------------------------------------- descriptors
def test_pca_of_a_line_has_one_component():
    t = np.linspace(-1, 1, 50)
    data = np.outer(t, [1.0, 2.0, 2.0]) + 5.0
    projection, ratio, components = pca(data, 2)
    np.testing.assert_allclose(ratio, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.abs(components[0]), [1 / 3, 2 / 3, 2 / 3], atol=1e-12)
    np.testing.assert_allclose(projection[:, 0], 3.0 * t * np.sign(components[0, 1]), atol=1e-12)


def test_nep_descriptor_map_by_species():
    from nepzbl_plugin.analysis import nep_descriptors
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Li", "O"))
    frames = [_crystal(2, 3.0, seed=s) for s in range(3)]
    X, symbols = nep_descriptors(frames, model)
    assert X.shape == (48, model.descriptor_dim)
    mapper = DescriptorMap().compute(X, symbols)
    assert set(mapper.by_species()) == {"Li", "O"}
    assert mapper.embedding.shape == (48, 2)
    assert 0 < mapper.explained_variance_ratio.sum() <= 1.0


def test_soap_descriptors_when_dscribe_is_installed():
    pytest.importorskip("dscribe")
    from nepzbl_plugin.analysis import soap_descriptors

    frames = [_crystal(2, 3.0, seed=s) for s in range(2)]
    X, symbols = soap_descriptors(frames, r_cut=3.0, n_max=3, l_max=2)
    assert X.shape[0] == 32 and X.shape[1] > 0 and np.all(np.isfinite(X))
    assert DescriptorMap().compute(X, symbols).embedding.shape == (32, 2)


def test_umap_is_refused_clearly_without_umap():
    from nepzbl_plugin.analysis.descriptors import umap_available

    if umap_available():
        pytest.skip("umap-learn is installed")
    with pytest.raises(AnalysisError, match="umap-learn"):
        DescriptorMap("umap")


# ------------------------------------------------------------------------------- CLI
def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("analysis", ["rdf", "msd", "arrhenius", "lattice", "locality",
                                      "descriptors"])
def test_every_analysis_has_help(capsys, analysis):
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", analysis, "--help"])
    assert exit_info.value.code == 0
    assert "--json" in capsys.readouterr().out


def _write_walk(path, dt=10.0, frames=300, info_time=True):
    from ase.io import write

    positions = _random_walk([0.03] * 3, frames, 12, dt, seed=7)
    out = []
    for k, p in enumerate(positions):
        atoms = Atoms(["Li"] * 8 + ["O"] * 4, positions=p + 3.0, cell=[8.0] * 3, pbc=True)
        atoms.info.update(step=k * 10, unwrapped=True)
        if info_time:
            atoms.info["time_fs"] = k * dt
        out.append(atoms)
    write(path, out, format="extxyz")


def test_cli_msd_json(tmp_path, capsys):
    trajectory = tmp_path / "trajectory.xyz"
    _write_walk(trajectory, info_time=False)
    status, out, _ = _run(capsys, "analyze", "msd", trajectory, "--species", "Li",
                          "--dt-frame", 10, "--json", "--temperature", 1000, "--charge", "Li=1")
    assert status == 0
    data = json.loads(out)
    assert data["D_cm2_per_s"] == pytest.approx(0.003, rel=0.35)
    assert data["D_error_cm2_per_s"] > 0
    assert data["species_reported"] == "Li"
    assert data["conductivity_S_per_cm"]["Li"] > 0
    assert (tmp_path / "trajectory_msd.png").stat().st_size > 1000
    # the same from info time_fs
    _write_walk(trajectory)
    status, out2, _ = _run(capsys, "analyze", "msd", trajectory, "--species", "Li", "--json",
                           "--png", "none")
    assert json.loads(out2)["D_cm2_per_s"] == pytest.approx(data["D_cm2_per_s"], rel=1e-9)
    status, text, _ = _run(capsys, "analyze", "msd", trajectory, "--png", "none")
    assert status == 0 and "cm²/s" in text and "fs" in text


def test_cli_msd_error_is_one_line(tmp_path, capsys):
    trajectory = tmp_path / "trajectory.xyz"
    _write_walk(trajectory)
    status, out, err = _run(capsys, "analyze", "msd", trajectory, "--species", "Na", "--json")
    assert status == 2 and out == ""
    assert err.startswith("nepzbl: error:") and err.count("\n") == 1 and "Na" in err


def test_cli_rdf_json(tmp_path, capsys):
    from ase.io import write

    rng = np.random.default_rng(2)
    path = tmp_path / "gas.xyz"
    write(path, [_gas(60, 8.0, rng) for _ in range(3)], format="extxyz")
    status, out, _ = _run(capsys, "analyze", "rdf", path, "--r-max", 3.5, "--bins", 35, "--json")
    assert status == 0
    data = json.loads(out)
    assert set(data["rdf"]) == {"Li-Li", "Li-O", "O-O"}
    assert len(data["r_angstrom"]) == 35 and data["frames"] == 3
    assert (tmp_path / "gas_rdf.png").exists()
    status, text, _ = _run(capsys, "analyze", "rdf", path, "--png", "none")
    assert status == 0 and "Å" in text


def test_cli_arrhenius_json(tmp_path, capsys):
    Ea, D0 = 0.3, 1e-3
    table = tmp_path / "d.txt"
    table.write_text("# T D\n" + "".join(
        f"{t} {D0 * np.exp(-Ea / (KB_EV_PER_K * t)):.12e}\n" for t in (600, 800, 1000)))
    status, out, _ = _run(capsys, "analyze", "arrhenius", table, "--point",
                          f"1200,{D0 * np.exp(-Ea / (KB_EV_PER_K * 1200)):.12e}", "--json")
    assert status == 0
    data = json.loads(out)
    assert data["Ea_eV"] == pytest.approx(Ea, rel=1e-8)
    assert data["D0"] == pytest.approx(D0, rel=1e-7)
    assert (tmp_path / "d_arrhenius.png").exists()
    table.write_text("600 1e-6\n700 oops\n")
    status, _, err = _run(capsys, "analyze", "arrhenius", table)
    assert status == 2 and "line 2" in err


def test_cli_arrhenius_reads_msd_json_on_one_long_line(tmp_path, capsys):
    """msd's JSON written compactly (a 10,000+ character line) is read whole: the inputs of
    'analyze' go through io._lines.FileLines without its line limit."""
    Ea, D0 = 0.3, 1e-3
    inputs = []
    for t in (600, 800, 1000):
        path = tmp_path / f"msd_{t}.json"
        path.write_text(json.dumps({"temperature_K": t, "msd": list(range(3000)),
                                    "D_cm2_per_s": D0 * np.exp(-Ea / (KB_EV_PER_K * t))}))
        inputs.append(path)
    assert len(inputs[0].read_text()) > 10_000
    status, out, _ = _run(capsys, "analyze", "arrhenius", *inputs, "--png", "none", "--json")
    assert status == 0
    assert json.loads(out)["Ea_eV"] == pytest.approx(Ea, rel=1e-8)


def test_cli_arrhenius_points_only_writes_arrhenius_png(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = _run(capsys, "analyze", "arrhenius", "--point", "800,4.4e-7", "1000,9.4e-6",
                          "1200,5e-5")
    assert status == 0 and "eV" in out and "cm²/s" in out
    assert [p.name for p in tmp_path.iterdir()] == ["arrhenius.png"]


def test_cli_lattice_table(tmp_path, capsys):
    T = np.arange(600.0, 1201.0, 25.0)
    ratio = np.clip(0.97 + 0.03 * (T - 600.0) / 300.0, None, 1.0)
    table = tmp_path / "lattice.txt"
    table.write_text("".join(f"{t} 13.0 13.0 {13.0 * r}\n" for t, r in zip(T, ratio, strict=True)))
    status, out, _ = _run(capsys, "analyze", "lattice", table, "--json")
    assert status == 0
    assert json.loads(out)["transition_temperature_K"] == pytest.approx(850.0, abs=1e-6)
    status, text, _ = _run(capsys, "analyze", "lattice", table, "--png", "none")
    assert "850.0 K" in text


def test_cli_lattice_trajectory_with_ramp(tmp_path, capsys):
    from ase.io import write

    T = np.linspace(600.0, 1200.0, 25)
    frames = []
    for t in T:
        r = min(0.97 + 0.03 * (t - 600.0) / 300.0, 1.0)
        frames.append(Atoms("Li", cell=[13.0, 13.0, 13.0 * r], pbc=True))
    path = tmp_path / "ramp.xyz"
    write(path, frames, format="extxyz")
    status, out, _ = _run(capsys, "analyze", "lattice", path, "--ramp", 600, 1200,
                          "--bin-width", 25, "--json", "--png", "none")
    assert status == 0
    assert json.loads(out)["transition_temperature_K"] == pytest.approx(850.0, abs=1e-6)
    status, _, err = _run(capsys, "analyze", "lattice", path)
    assert status == 2 and "--ramp" in err


def test_cli_locality_and_descriptors(tmp_path, capsys):
    from ase.io import write

    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Li", "O"), cutoffs=(2.5, 2.0))
    model_path = tmp_path / "nep.txt"
    model.write(model_path)
    structure = tmp_path / "s.xyz"
    write(structure, _crystal(4, 2.75, seed=3), format="extxyz")
    status, out, _ = _run(capsys, "analyze", "locality", model_path, structure, "--radii", 2,
                          5.2, "--samples", 2, "--json")
    assert status == 0
    data = json.loads(out)
    assert data["expected_radius_angstrom"] == 5.0
    assert data["force_max_eV_per_angstrom"][0] > 0 and data["force_max_eV_per_angstrom"][1] == 0
    assert (tmp_path / "s_locality.png").exists()
    status, out, _ = _run(capsys, "analyze", "descriptors", structure, "--model", model_path,
                          "--json")
    assert status == 0
    data = json.loads(out)
    assert data["descriptor"] == "NEP" and data["atoms"] == 128
    assert set(data["species"]) == {"Li", "O"}
    assert (tmp_path / "s_descriptors.png").exists()


def test_pair_distances_fast_path_equals_ase():
    from ase.neighborlist import neighbor_list

    from nepzbl_plugin.analysis.pairs import pair_distances

    rng = np.random.default_rng(8)
    atoms = Atoms(["Li"] * 80, positions=rng.uniform(0, 9.0, (80, 3)), cell=[9.0, 10.0, 11.0],
                  pbc=True)
    for structure in (atoms, _structures()[0]):  # orthorhombic, then a primitive fcc cell
        ours = pair_distances(structure, 4.0)
        reference = neighbor_list("ijd", structure, 4.0)
        key = np.lexsort((ours[2], ours[1], ours[0]))
        ref_key = np.lexsort((reference[2], reference[1], reference[0]))
        for a, b in zip(ours, reference, strict=True):
            np.testing.assert_allclose(a[key], b[ref_key], atol=1e-12)


def test_rdf_msd_arrhenius_bad_input_is_one_analysis_error():
    # Before: RDF().compute([]) raised TypeError 'NoneType' object is not iterable; a NaN
    # position gave an all-zero RDF and a NaN diffusion coefficient; Arrhenius.extrapolate(0)
    # raised ZeroDivisionError and a negative temperature returned 5e292 cm²/s.
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    with pytest.raises(AnalysisError, match="RDF: no frames to analyse"):
        RDF(3.0).compute([])
    with pytest.raises(AnalysisError, match="RDF: frame 0 is a str, not ase.Atoms"):
        RDF(3.0).compute("abc")
    bad = atoms.copy()
    bad.positions[1, 0] = np.nan
    with pytest.raises(AnalysisError, match="RDF: frame 1 has NaN or infinite positions"):
        RDF(3.0).compute([atoms, bad])
    positions = np.zeros((20, 4, 3)) + np.arange(20)[:, None, None] * 0.01
    positions[3, 2, 1] = np.nan
    with pytest.raises(AnalysisError, match="frame 3, atom 2: NaN or infinite position"):
        MSD(blocks=2).compute_arrays(positions, ["Na", "Cl"] * 2, 1.0)
    fit = Arrhenius().compute([600, 800, 1000], [1e-7, 1e-6, 5e-6])
    for T in (0, -5.0, float("nan")):
        with pytest.raises(AnalysisError, match="temperature_K"):
            fit.extrapolate(T)
