"""The md package: the array MD engine against known results (equipartition, energy
conservation, mean pressure under NPT), its observers and outputs, GPUMD export, ``nepzbl md``.

A numpy Lennard-Jones argon (32 atoms) keeps the statistical tests to about a second each."""

from __future__ import annotations

import os

import numpy as np
import pytest
from ase import units
from ase.build import bulk

from nepzbl_plugin.errors import FileError
from nepzbl_plugin.md import (
    DistanceMonitor,
    EngineForces,
    MDSetupError,
    OutputExistsError,
    TemperatureSchedule,
    ThermoLog,
    TrajectoryWriter,
    run_md,
)


class LennardJones:
    """All-pairs Lennard-Jones, shifted to zero at the cutoff, in an orthorhombic cell with the
    minimum image (cutoff below half the shortest cell length)."""

    def __init__(self, epsilon=0.0104, sigma=3.4, cutoff=5.2):
        self.epsilon, self.sigma, self.cutoff = epsilon, sigma, cutoff
        self.shift = 4 * epsilon * ((sigma / cutoff) ** 12 - (sigma / cutoff) ** 6)

    def __call__(self, positions, cell):
        lengths = np.diag(cell)
        d = positions[None, :, :] - positions[:, None, :]
        d -= lengths * np.round(d / lengths)
        r2 = np.einsum("ijk,ijk->ij", d, d)
        np.fill_diagonal(r2, np.inf)
        inside = r2 < self.cutoff ** 2
        s6 = np.where(inside, (self.sigma ** 2 / r2) ** 3, 0.0)
        energy = 0.5 * np.sum(np.where(inside, 4 * self.epsilon * (s6 * s6 - s6) - self.shift,
                                       0.0))
        coeff = 24 * self.epsilon * (2 * s6 * s6 - s6) / r2
        forces = -(coeff[:, :, None] * d).sum(axis=1)
        virial = 0.5 * np.einsum("ij,ija,ijb->ab", coeff, d, d)
        return energy, forces, virial


@pytest.fixture(scope="module")
def argon():
    return bulk("Ar", "fcc", a=5.3, cubic=True).repeat(2)  # 32 atoms, 10.6 Å cube


def test_lennard_jones_virial_is_minus_strain_derivative(argon):
    lj = LennardJones()
    rng = np.random.default_rng(0)
    positions = argon.positions + rng.normal(0, 0.05, argon.positions.shape)
    _, _, virial = lj(positions, argon.cell.array)
    h = 1e-5
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            strain = np.zeros((3, 3))
            strain[a, b] = h
            up = lj(positions @ (np.eye(3) + strain), argon.cell.array @ (np.eye(3) + strain))[0]
            down = lj(positions @ (np.eye(3) - strain), argon.cell.array @ (np.eye(3) - strain))[0]
            numeric[a, b] = -(up - down) / (2 * h)
    # the test potential's minimum image is orthorhombic: normal strains only (the barostats
    # use the diagonal)
    np.testing.assert_allclose(np.diag(virial), np.diag(numeric), atol=1e-7)


def test_nve_conserves_energy(argon):
    log = ThermoLog(every=10)
    result = run_md(argon, LennardJones(), 1000, 5.0, ensemble="nve", temperature=60, seed=1,
                    observers=[log])
    total = log.column("E_total_eV")
    kinetic = log.column("E_kin_eV")
    # a harmonic-like solid started on its lattice shares the kinetic energy: T halves
    assert 20 < result.mean_temperature < 40
    assert np.ptp(total) < 0.02 * np.ptp(kinetic)
    assert abs(result.energy_drift_per_atom) < 1e-5  # eV/atom over 5 ps


@pytest.mark.parametrize("ensemble", ["nvt-bussi", "nvt-langevin"])
def test_thermostats_give_the_canonical_temperature(argon, ensemble):
    """Equipartition: <T> = T0; canonical spread of the kinetic temperature T0 sqrt(2 / dof)."""
    log = ThermoLog(every=2)
    run_md(argon, LennardJones(), 4000, 5.0, ensemble=ensemble, temperature=40,
           tau_temperature=100, seed=3, observers=[log])
    temperatures = log.column("T_K")[200:]
    dof = 3 * 32 - (0 if ensemble == "nvt-langevin" else 3)
    assert temperatures.mean() == pytest.approx(40, rel=0.05)
    assert temperatures.std() == pytest.approx(40 * np.sqrt(2 / dof), rel=0.2)


def test_berendsen_thermostat_reaches_target_without_canonical_spread(argon):
    log = ThermoLog(every=2)
    run_md(argon, LennardJones(), 2000, 5.0, ensemble="nvt-berendsen", temperature=40,
           tau_temperature=100, seed=3, observers=[log])
    temperatures = log.column("T_K")[300:]
    assert temperatures.mean() == pytest.approx(40, rel=0.05)
    assert temperatures.std() < 0.7 * 40 * np.sqrt(2 / 93)


@pytest.mark.parametrize("ensemble, target", [
    ("npt", 0.05), ("npt-berendsen", 0.05), ("npt-aniso", (0.02, 0.06, 0.1)),
])
def test_barostats_hold_the_mean_pressure(argon, ensemble, target):
    """Mean pressure = target within about 3 standard errors (the pressure of 32 atoms spreads
    by 0.03 GPa, correlated over about 250 steps)."""
    log = ThermoLog(every=5)
    run_md(argon, LennardJones(), 6000, 5.0, ensemble=ensemble, temperature=40, pressure=target,
           tau_pressure=500, compressibility=0.3, seed=4, observers=[log])
    keep = slice(200, None)
    diagonal = np.array([log.column(c)[keep].mean() for c in ("Pxx_GPa", "Pyy_GPa", "Pzz_GPa")])
    if ensemble == "npt-aniso":
        np.testing.assert_allclose(diagonal, target, atol=0.025)
        lengths = log.rows[-1, 10:13]
        assert lengths[2] < lengths[0]  # zz pushed hardest: c shortest
    else:
        assert log.column("P_GPa")[keep].mean() == pytest.approx(target, abs=0.02)
        lengths = log.rows[-1, 10:13]
        np.testing.assert_allclose(lengths, lengths[0], rtol=1e-12)  # stays cubic
    assert log.column("T_K")[keep].mean() == pytest.approx(40, rel=0.07)


def test_pressure_and_temperature_units_match_ase(argon):
    """Frame pressure (GPa) = ASE's kinetic + virial pressure; temperature = ASE's."""
    from ase.calculators.emt import EMT

    from nepzbl_plugin.md import CalculatorForces

    atoms = bulk("Cu", "fcc", a=3.58, cubic=True)
    class Keep:
        every = 1
        frames = []

        def __call__(self, frame):
            self.frames.append(frame)

    keep = Keep()
    run_md(atoms, CalculatorForces(EMT(), atoms), 0, 1.0, ensemble="nvt-langevin",
           temperature=500, seed=1, observers=[keep])
    frame = keep.frames[0]
    reference = frame.atoms()
    reference.calc = EMT()
    stress = reference.get_stress(include_ideal_gas=True, voigt=False)
    np.testing.assert_allclose(frame.pressure_tensor, -stress / units.GPa, atol=1e-9)
    assert frame.temperature == pytest.approx(reference.get_temperature(), rel=1e-12)
    assert frame.temperature == pytest.approx(500, rel=1e-12)  # started exactly at 500 K


def test_temperature_schedules():
    linear = TemperatureSchedule.linear(600, 1200, 1000)
    assert linear(0) == 600 and linear(500) == 900 and linear(1000) == 1200
    assert linear(5000) == 1200
    piecewise = TemperatureSchedule([(0, 1200), (100, 1200), (300, 600)])
    assert [piecewise(s) for s in (50, 100, 200, 300, 400)] == [1200, 1200, 900, 600, 600]
    with pytest.raises(MDSetupError):
        TemperatureSchedule([(0, -5)])


def test_langevin_ramp_follows_the_target(argon):
    log = ThermoLog(every=5)
    run_md(argon, LennardJones(), 3000, 5.0, ensemble="nvt-langevin",
           temperature=TemperatureSchedule.linear(20, 60, 3000), tau_temperature=50, seed=5,
           observers=[log])
    steps, temperatures = log.column("step"), log.column("T_K")
    early = temperatures[(steps > 200) & (steps < 800)].mean()
    late = temperatures[steps > 2400].mean()
    assert early == pytest.approx(20 + 40 * 500 / 3000, rel=0.2)
    assert late == pytest.approx(20 + 40 * 2700 / 3000, rel=0.15)


def test_distance_monitor_stops_a_collapse(argon):
    atoms = argon.copy()
    atoms.positions[1] = atoms.positions[0] + [0.4, 0, 0]
    monitor = DistanceMonitor({"Ar-Ar": 0.5}, every=1)
    result = run_md(atoms, LennardJones(cutoff=5.0), 10, 1.0, ensemble="nve", observers=[monitor])
    assert result.steps_done == 0
    assert "Ar-Ar at 0.400 Å" in result.stopped
    calm = DistanceMonitor(1.0, every=5, search=4.5)
    result = run_md(argon, LennardJones(), 20, 2.0, ensemble="nvt", temperature=30, seed=1,
                    observers=[calm])
    assert result.stopped is None and result.steps_done == 20
    assert len(calm.history) == 5  # steps 0, 5, 10, 15, 20
    assert calm.minimum["Ar-Ar"] == pytest.approx(5.3 / np.sqrt(2), rel=0.1)


def test_outputs_are_unwrapped_and_readable(tmp_path, argon):
    from ase.io import read

    atoms = argon.copy()
    atoms.set_velocities(np.tile([[0.05, 0.0, 0.0]], (len(atoms), 1)))  # Å per ASE time unit
    thermo = ThermoLog(tmp_path / "thermo.txt", every=10)
    trajectory = TrajectoryWriter(tmp_path / "trajectory.xyz", every=10)
    run_md(atoms, lambda p, c: (0.0, np.zeros_like(p), np.zeros((3, 3))), 100, 10.0,
           ensemble="nve", thermalize=False, observers=[thermo, trajectory])
    frames = read(tmp_path / "trajectory.xyz", ":")
    assert len(frames) == 11
    assert frames[-1].info["step"] == 100 and frames[-1].info["time_fs"] == 1000.0
    assert frames[-1].info["unwrapped"] is True
    # free flight: centre-of-mass removal leaves nothing, so zero momentum: no motion
    np.testing.assert_allclose(frames[-1].positions, atoms.positions, atol=1e-12)
    table = np.loadtxt(tmp_path / "thermo.txt")
    assert table.shape == (11, 26)
    with open(tmp_path / "thermo.txt") as handle:
        assert handle.readline().startswith("# step time_fs T_K E_pot_eV")
    assert not list(tmp_path.glob(".*tmp"))


def test_trajectory_keeps_positions_unwrapped(tmp_path, argon):
    from ase.io import read

    atoms = argon.copy()
    velocities = np.zeros((len(atoms), 3))
    velocities[0] = [0.2, 0, 0]
    velocities[1] = [-0.2, 0, 0]  # zero total momentum: both keep flying
    atoms.set_velocities(velocities)
    trajectory = TrajectoryWriter(tmp_path / "t.xyz", every=50)
    run_md(atoms, lambda p, c: (0.0, np.zeros_like(p), np.zeros((3, 3))), 200, 10.0,
           ensemble="nve", thermalize=False, observers=[trajectory])
    last = read(tmp_path / "t.xyz", -1)
    travelled = 0.2 * 2000 * units.fs  # Å in 2000 fs
    assert travelled > 10.6
    assert last.positions[0, 0] - atoms.positions[0, 0] == pytest.approx(travelled)
    velocities_back = last.get_velocities()
    np.testing.assert_allclose(velocities_back[0], [0.2, 0, 0], rtol=1e-9)


def test_outputs_refuse_to_replace_foreign_files(tmp_path):
    (tmp_path / "trajectory.xyz").write_text("someone else's\n")
    with pytest.raises(OutputExistsError):
        TrajectoryWriter(tmp_path / "trajectory.xyz")
    assert (tmp_path / "trajectory.xyz").read_text() == "someone else's\n"


def test_trajectory_target_rules_are_the_atomic_writer_s(tmp_path):
    """Checked when the writer is made, before a step is run: a folder, or (as root) another
    user's file, is one FileError even with overwrite; our own file is replaced only at close."""
    (tmp_path / "folder.xyz").mkdir()
    with pytest.raises(FileError, match="it is a folder"):
        TrajectoryWriter(tmp_path / "folder.xyz", overwrite=True)
    ours = tmp_path / "trajectory.xyz"
    ours.write_text("old run\n")
    writer = TrajectoryWriter(ours, overwrite=True)
    assert ours.read_text() == "old run\n"  # still the old file while the run goes on
    writer.close()
    assert ours.read_text() == "" and not list(tmp_path.glob(".*tmp"))
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.chown(ours, 4242, 4242)
        os.chmod(tmp_path, 0o775)  # a shared folder: another user's file is theirs
        with pytest.raises(FileError, match="another user"):
            TrajectoryWriter(ours, overwrite=True)


def test_bad_settings_raise_one_clear_error(argon):
    with pytest.raises(MDSetupError, match="unknown ensemble"):
        run_md(argon, LennardJones(), 1, ensemble="nvt-nose")
    with pytest.raises(MDSetupError, match="needs a temperature"):
        run_md(argon, LennardJones(), 1, ensemble="nvt")


def test_engine_forces_nve_with_a_nep_zbl_model():
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Li", "O"), zbl="universal", seed=2, scale=0.3)
    atoms = bulk("Li", "bcc", a=3.5, cubic=True).repeat(2)
    atoms.symbols[::4] = "O"
    evaluator = Evaluator(model, num_threads=1)
    forces = EngineForces(evaluator, atoms)
    energy, f, virial = forces(atoms.positions, atoms.cell.array)
    reference = evaluator.evaluate(atoms)
    assert energy == reference["energy"]
    # a lattice translation of one atom (unwrapped positions) changes nothing
    shifted = atoms.positions.copy()
    shifted[3] += atoms.cell[0] * 2 - atoms.cell[2]
    np.testing.assert_allclose(forces(shifted, atoms.cell.array)[1], f, atol=1e-10)
    log = ThermoLog(every=5)
    result = run_md(atoms, forces, 400, 0.5, ensemble="nve", temperature=300, seed=1,
                    observers=[log])
    assert result.stopped is None
    assert np.ptp(log.column("E_total_eV")) < 0.05 * np.ptp(log.column("E_kin_eV"))


# ---------------------------------------------------------------- nepzbl md and GPUMD export
@pytest.fixture
def small_run(tmp_path):
    from nepzbl_plugin.testing import random_model

    model = random_model(types=("Li", "O"), zbl="universal", seed=2, scale=0.3)
    model.write(tmp_path / "nep.txt")
    atoms = bulk("Li", "bcc", a=3.5, cubic=True).repeat(2)
    atoms.symbols[::4] = "O"
    atoms.write(tmp_path / "start.xyz")
    return tmp_path


def test_cli_md_writes_thermo_and_trajectory(small_run, capsys):
    from ase.io import read

    from nepzbl_plugin.cli import main

    out = small_run / "run"
    status = main(["md", str(small_run / "nep.txt"), str(small_run / "start.xyz"),
                   "--ensemble", "nvt-langevin", "--temperature", "300", "--temperature-end",
                   "600", "--steps", "40", "--dt", "0.5", "--every", "10", "--out", str(out),
                   "--seed", "1", "--threads", "1"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "40 of 40 steps of 0.5 fs" in printed and " K" in printed and "GPa" in printed
    table = np.loadtxt(out / "thermo.txt")
    assert table.shape == (5, 26)
    np.testing.assert_allclose(table[:, 1], [0, 5, 10, 15, 20])
    frames = read(out / "trajectory.xyz", ":")
    assert [f.info["step"] for f in frames] == [0, 10, 20, 30, 40]
    # a second run into the same folder is refused, one line, exit 2
    again = main(["md", str(small_run / "nep.txt"), str(small_run / "start.xyz"),
                  "--temperature", "300", "--steps", "5", "--out", str(out)])
    assert again == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_md_collapse_at_the_start_prints_no_nan(small_run, capsys):
    """A start closer than --min-distance stops at step 0: exit 1, the pair and distance in Å,
    and no 'nan K' means."""
    from nepzbl_plugin.cli import main

    status = main(["md", str(small_run / "nep.txt"), str(small_run / "start.xyz"),
                   "--temperature", "300", "--steps", "10", "--every", "5",
                   "--min-distance", "3.2", "--out", str(small_run / "collapse"),
                   "--no-progress"])
    printed = capsys.readouterr().out
    assert status == 1
    assert "0 of 10 steps" in printed and "collapse at step 0" in printed and " Å" in printed
    assert "nan" not in printed and "n/a (no step was made)" in printed


def test_cli_md_gpumd_inputs(small_run, capsys, monkeypatch):
    from ase.io import read

    from nepzbl_plugin.cli import main

    monkeypatch.setenv("PATH", "")  # no gpumd: inputs only
    out = small_run / "gpumd"
    status = main(["md", str(small_run / "nep.txt"), str(small_run / "start.xyz"),
                   "--ensemble", "npt-aniso", "--temperature-points", "0:300,1000:600,2000:600",
                   "--pressure", "0", "0", "1", "--steps", "2000", "--dt", "2", "--every", "100",
                   "--tau-t", "200", "--tau-p", "2000", "--compressibility", "0.01",
                   "--out", str(out), "--gpumd"])
    assert status == 0
    run_in = (out / "run.in").read_text().splitlines()
    assert run_in[:2] == ["potential nep.txt", "velocity 300"]
    assert "time_step 2" in run_in
    ensembles = [line for line in run_in if line.startswith("ensemble")]
    assert ensembles == ["ensemble npt_scr 300 600 100 0 0 1 100 100 100 1000",
                         "ensemble npt_scr 600 600 100 0 0 1 100 100 100 1000"]
    assert [line for line in run_in if line.startswith("run")] == ["run 1000", "run 1000"]
    assert "dump_thermo 100" in run_in and "dump_exyz 100 1 0" in run_in
    model = read(out / "model.xyz")
    assert model.get_chemical_symbols() == read(small_run / "start.xyz").get_chemical_symbols()
    assert (out / "nep.txt").read_text() == (small_run / "nep.txt").read_text()


def test_gpumd_run_in_for_nvt_ensembles():
    from nepzbl_plugin.md.gpumd import gpumd_run_in

    text = gpumd_run_in(ensemble="nvt-bussi", steps=500, timestep=1.0, temperature=1000,
                        every=50, tau_temperature=100)
    assert "ensemble nvt_bdp 1000 1000 100" in text.splitlines()
    assert "compute_msd 50 5" in text.splitlines()
    text = gpumd_run_in(ensemble="nve", steps=10, timestep=1.0, temperature=300, every=5)
    assert "ensemble nve" in text.splitlines()
    text = gpumd_run_in(ensemble="nvt-langevin", steps=10, timestep=0.5,
                        temperature=TemperatureSchedule.linear(600, 1200, 10), every=5)
    assert "ensemble nvt_lan 600 1200 200" in text.splitlines()


def test_cli_md_errors_are_one_line(small_run, capsys):
    from nepzbl_plugin.cli import main

    base = ["md", str(small_run / "nep.txt"), str(small_run / "start.xyz"), "--steps", "2",
            "--out", str(small_run / "e")]
    assert main(base + ["--ensemble", "nvt"]) == 2
    assert "needs --temperature" in capsys.readouterr().err
    (small_run / "bad.xyz").write_text("not a structure\n")
    bad = ["md", str(small_run / "nep.txt"), str(small_run / "bad.xyz"), "--temperature", "300"]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("nepzbl: error:") and "bad.xyz" in err and len(err.splitlines()) == 1
    try:
        from nepzbl_plugin.engine import _cuda_available

        cuda = _cuda_available()
    except ImportError:
        cuda = False
    if not cuda:
        assert main(base + ["--temperature", "300", "--device", "cuda"]) == 2
        assert "CUDA" in capsys.readouterr().err


def test_cli_md_help(capsys):
    from nepzbl_plugin.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["md", "--help"])
    assert exit_.value.code == 0
    assert "--ensemble" in capsys.readouterr().out


def test_gpumd_export_writes_a_model_gpumd_runs(tmp_path):
    """GPUMD runs neither nep3 nor a cutoff line without neighbour counts: the export upgrades
    the one exactly and estimates the other, and says so; a model GPUMD runs is copied as is."""
    from nepzbl_plugin.md.gpumd import write_gpumd_inputs
    from nepzbl_plugin.model import read_model
    from nepzbl_plugin.neighbours import estimate_neighbour_counts
    from nepzbl_plugin.testing import random_model

    atoms = bulk("Li", "bcc", a=3.5, cubic=True).repeat(2)
    old = random_model(version=3, types=("Li", "O"), seed=3)
    old.max_neighbors_radial = old.max_neighbors_angular = 0
    old.write(tmp_path / "nep3.txt")
    lines = []
    paths = write_gpumd_inputs(tmp_path / "a", tmp_path / "nep3.txt", atoms, log=lines.append,
                               ensemble="nve", steps=10, timestep=1.0,
                               temperature=None, every=5)
    written = read_model(paths[2])
    assert written.version == 4
    assert (written.max_neighbors_radial, written.max_neighbors_angular) == \
        estimate_neighbour_counts(old)
    assert len(lines) == 2 and "nep4" in lines[0] and "neighbour counts" in lines[1]

    new = random_model(version=4, types=("Li", "O"), seed=3)
    new.max_neighbors_radial, new.max_neighbors_angular = 40, 20
    new.write(tmp_path / "nep4.txt")
    lines.clear()
    paths = write_gpumd_inputs(tmp_path / "b", tmp_path / "nep4.txt", atoms, log=lines.append,
                               ensemble="nve", steps=10, timestep=1.0,
                               temperature=None, every=5)
    assert paths[2].read_bytes() == (tmp_path / "nep4.txt").read_bytes() and not lines


@pytest.mark.parametrize("kwargs, message", [
    # Before: 2.7 steps ran 2; '1' fs failed with "can't multiply sequence"; 'x' and NaN steps,
    # four pressures and a string temperature were numpy/int() messages; seeds were numpy's.
    (dict(steps=2.7), "steps must be a whole number >= 0, not 2.7"),
    (dict(steps=float("nan")), "steps must be a whole number >= 0, not nan"),
    (dict(timestep="1"), "the time step (fs) must be a number, not '1'"),
    (dict(ensemble="nvt-langevin", temperature=300, tau_temperature="x"),
     "tau_temperature (fs) must be a number, not 'x'"),
    (dict(ensemble="npt", temperature=300, pressure=[1, 2, 3, 4]),
     "the target pressure must be one number or three (xx, yy, zz) in GPa"),
    (dict(temperature="hot"), "a temperature schedule takes (step, K) numbers"),
    (dict(seed=-1), "seed must be None or a whole number >= 0, not -1"),
    (dict(forces=3), "forces must be EngineForces, CalculatorForces or a callable"),
])
def test_run_md_bad_arguments_are_one_setup_error(argon, kwargs, message):
    import re

    arguments = {"forces": LennardJones(), "steps": 3, "timestep": 1.0, **kwargs}
    with pytest.raises(MDSetupError, match=re.escape(message)):
        run_md(argon, arguments.pop("forces"), arguments.pop("steps"), **arguments)


def test_run_md_takes_numpy_scalars_and_0d_arrays(argon):
    """Numbers read from an .npz (0-d arrays) or numpy scalars are numbers: the time step and
    coupling times of 0-d arrays ran before the setup checks and must still run."""
    result = run_md(argon.copy(), LennardJones(), np.array(2), np.array(1.0),
                    ensemble="nvt-langevin", temperature=np.float32(30.0),
                    tau_temperature=np.array(100.0), seed=np.int64(0))
    assert result.steps_done == 2
    result = run_md(argon.copy(), LennardJones(), np.int64(1), np.float32(1.0), ensemble="npt",
                    temperature=30.0, tau_pressure=np.array(1000.0),
                    compressibility=np.array(0.01), seed=0)
    assert result.steps_done == 1
    with pytest.raises(MDSetupError, match="the time step"):
        run_md(argon.copy(), LennardJones(), 1, np.array([1.0, 2.0]))
    with pytest.raises(MDSetupError, match="must be a number"):
        run_md(argon.copy(), LennardJones(), 1, np.array(True))


@pytest.mark.parametrize("edit, message", [
    # Before: the first step turned every position into NaN and the engine reported "NaN,
    # infinite or huge position".
    (lambda a: a.set_masses([0.0] * len(a)), "atom 0 (Ar) has mass 0.0: every mass must be"),
    (lambda a: a.set_masses([-1.0] + [39.9] * (len(a) - 1)), "atom 0 (Ar) has mass -1.0"),
    (lambda a: a.set_velocities(np.where(np.arange(len(a))[:, None] == 3, np.nan,
                                         np.zeros((len(a), 3)))),
     "atom 3 has a NaN or infinite velocity"),
])
def test_run_md_refuses_unusable_masses_and_velocities(argon, edit, message):
    import re

    atoms = argon.copy()
    edit(atoms)
    with pytest.raises(MDSetupError, match=re.escape(message)):
        run_md(atoms, LennardJones(), 3, 1.0)


def test_run_md_engine_forces_of_other_atoms_are_refused():
    # Before: the run "stopped" at step 1 with "ValueError at step 1: 16 types but 15 positions"
    from nepzbl_plugin.engine import Evaluator
    from nepzbl_plugin.testing import random_model

    atoms = bulk("Li", "bcc", a=3.4, cubic=True).repeat(2)
    forces = EngineForces(Evaluator(random_model(types=("Li",), seed=1)), atoms)
    with pytest.raises(MDSetupError, match="EngineForces were made for 16 atoms, these atoms "
                                           "are 15"):
        run_md(atoms[1:], forces, 3, 1.0)
