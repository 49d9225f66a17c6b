"""The demo behind ``nepzbl demo`` (:mod:`nepzbl_plugin.cli.demo`): why ZBL matters, in a few
minutes on a laptop.

1. Build a small Cu-Ni alloy data set labelled by ASE's EMT calculator: hot MD frames (600 to
   1500 K) of 32-atom fcc cells, with no close contacts (every distance above 2.0 Å).
2. Choose ZBL from these data (:func:`~nepzbl_plugin.zbl.suggest_zbl`).
3. Train a pure NEP and a NEP-ZBL model on the same data and budget.
4. Audit both (dimer scans, the data's distances, a short hot-MD stress test) and show the
   difference on the terminal and in a PNG.

The data generation, the comparison and the plot work without the trainer (and are tested so);
training needs :func:`nepzbl_plugin.train.train`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from .md import _thermalize

__all__ = ["generate_alloy_data", "demo_nep_in", "compare_reports", "run_demo", "CLOSE_CONTACT",
           "DEMO_EPOCHS"]

DEMO_EPOCHS = 200  # per model; 20 epochs took 15 s on the shared 2-core development machine
CLOSE_CONTACT = 2.0  # Angstrom: frames with a shorter distance are dropped (Cu-Ni NN ~2.5 Å)
LATTICE = {"Cu": 3.61, "Ni": 3.52}  # fcc lattice constants, Vegard's law in between


def _to_structure(atoms, temperature: float, config_type: str):
    from .io.xyz import TrainingStructure

    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=False)
    virial = -stress * atoms.get_volume()  # GPUMD sign: compression positive
    return TrainingStructure(
        symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions(),
        cell=np.array(atoms.get_cell()), pbc=np.array(atoms.pbc), energy=energy,
        forces=forces, virial=0.5 * (virial + virial.T), config_type=config_type,
        temperature=float(temperature),
    )


def generate_alloy_data(
    num_structures: int = 60,
    *,
    temperatures=(600.0, 900.0, 1200.0, 1500.0),
    repeat: int = 2,
    ni_fraction: float = 0.5,
    steps_between: int = 20,
    timestep: float = 2.0,
    seed: int = 0,
    progress=None,
) -> list:
    """EMT-labelled Cu-Ni training structures from hot Langevin MD, without close contacts.

    Each of ``len(temperatures)`` runs starts from a random fcc Cu(1-x)Ni(x) cell of
    4 ``repeat``^3 atoms, strained by up to +-2 %, and saves a frame every ``steps_between``
    steps of ``timestep`` fs after a short equilibration. Frames with any distance below
    :data:`CLOSE_CONTACT` are skipped. Returns a list of
    :class:`~nepzbl_plugin.io.xyz.TrainingStructure` (energy, forces, virial; ``info``
    carries the temperature). ``progress``: ``None`` or ``progress(done, total, label)``
    after each saved frame.
    """
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.langevin import Langevin

    rng = np.random.default_rng(seed)
    temperatures = list(temperatures)
    per_run = [num_structures // len(temperatures)] * len(temperatures)
    for k in range(num_structures - sum(per_run)):
        per_run[k] += 1
    a0 = (1 - ni_fraction) * LATTICE["Cu"] + ni_fraction * LATTICE["Ni"]
    structures = []
    for temperature, count in zip(temperatures, per_run, strict=True):
        atoms = bulk("Cu", "fcc", a=a0, cubic=True).repeat(repeat)
        symbols = np.where(rng.random(len(atoms)) < ni_fraction, "Ni", "Cu")
        atoms.set_chemical_symbols(list(symbols))
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3)) * np.array(
            [[1, 0.5, 0.5], [0.5, 1, 0.5], [0.5, 0.5, 1]])
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.calc = EMT()
        _thermalize(atoms, temperature, rng)
        dyn = Langevin(atoms, timestep * units.fs, temperature_K=temperature,
                       friction=0.02 / units.fs, fixcm=False, rng=rng)
        dyn.run(5 * steps_between)  # equilibrate
        saved = attempts = 0
        while saved < count and attempts < 20 * count:
            dyn.run(steps_between)
            attempts += 1
            if len(atoms) > 1 and np.min(atoms.get_all_distances(mic=True)
                                         + 1e3 * np.eye(len(atoms))) < CLOSE_CONTACT:
                continue
            structures.append(_to_structure(atoms, temperature, f"emt_md_{temperature:g}K"))
            saved += 1
            if progress:
                progress(len(structures), num_structures, "EMT data")
    return structures


def demo_nep_in(zbl_suggestion=None, *, generations: int | None = None):
    """The small model both demo runs train: Cu Ni, cutoffs 5/4 Å, n_max 4 4, basis 6 6,
    l_max 4 2, 12 neurons; ZBL from ``zbl_suggestion`` when given."""
    from .io.nep_in import parse_nep_in

    lines = ["type 2 Cu Ni", "cutoff 5 4", "n_max 4 4", "basis_size 6 6", "l_max 4 2",
             "neuron 12", "lambda_v 0.1"]
    if generations is not None:
        lines.append(f"generation {generations}")
    if zbl_suggestion is not None:
        lines += zbl_suggestion.nep_in_lines()
    nep = parse_nep_in("\n".join(lines) + "\n", "<demo nep.in>")
    if zbl_suggestion is not None and zbl_suggestion.form == "flexible":
        nep.flexible_zbl = zbl_suggestion.table()
    return nep


@dataclass
class Comparison:
    text: str
    rows: list[dict]


def compare_reports(reports, labels, extra: dict | None = None) -> Comparison:
    """Side-by-side table of audits: per pair the barrier, the wall ratio and the verdict of
    each model, then the hot-MD line and the overall verdict of each."""
    names = list(reports[0].analyses)
    width = 40
    head = f"{'pair':<8}" + "".join(f"{label:<{width}}" for label in labels)
    lines = [head, "-" * len(head)]
    rows = []
    for name in names:
        cells = []
        row = {"pair": name}
        for report, label in zip(reports, labels, strict=False):
            a = report.analyses[name]
            barrier = "no barrier" if a.barrier is None else (
                f"{a.barrier:.2f} eV @ {a.breakdown_distance:.2f} Å")
            verdict = "COLLAPSE" if a.collapse_path else "safe"
            cells.append(f"{barrier:<18}{verdict:<9}wall {a.wall_ratio:.2f}")
            row[label] = {"barrier": a.barrier, "breakdown_distance": a.breakdown_distance,
                          "collapse_path": a.collapse_path, "wall_ratio": a.wall_ratio}
        rows.append(row)
        lines.append(f"{name:<8}" + "".join(f"{c:<{width}}" for c in cells))
    lines.append("(energy barrier @ breakdown distance, dimer verdict, lowest E/ZBL below 0.5 Å)")
    for key in ("hot_md", "zbl_vs_data"):
        lines.append(f"{key}:")
        for report, label in zip(reports, labels, strict=False):
            check = report.checks[key]
            lines.append(f"  {label}: [{check.status}] {check.message}")
    for label, values in (extra or {}).items():
        lines.append(f"{label}: {values}")
    verdicts = ", ".join(f"{label} {'SAFE' if r.safe else 'UNSAFE'}"
                         for r, label in zip(reports, labels, strict=False))
    lines.append(f"verdict: {verdicts}")
    return Comparison("\n".join(lines), rows)


def _rmse(model, structures) -> tuple[float, float]:
    """Energy (meV/atom) and force (meV/Å) RMSE of a model on structures."""
    from ase import Atoms

    from .audit.verdict import make_calculator

    calc = make_calculator(model)
    de, df = [], []
    for s in structures:
        atoms = Atoms(s.symbols, positions=s.positions, cell=s.cell, pbc=True)
        atoms.calc = calc
        de.append((atoms.get_potential_energy() - s.energy) / len(atoms))
        df.append((atoms.get_forces() - s.forces).ravel())
    return (1e3 * float(np.sqrt(np.mean(np.square(de)))),
            1e3 * float(np.sqrt(np.mean(np.square(np.concatenate(df))))))


def run_demo(out_dir: str = "nepzbl-demo", *, num_structures: int = 60,
             train_epochs: int = DEMO_EPOCHS, md_steps: int = 1000, rattle: float = 0.4,
             seed: int = 0, progress=None, train_progress=None, log=None) -> dict:
    """The whole demo; returns a summary dict (also written as ``summary.json``).

    Each model trains for ``train_epochs`` epochs (a step budget, not a wall-clock one, so the
    same seed gives the same models on every machine).

    The hot-MD stress test runs ``md_steps`` of 1 fs at 1.2 x the data's hottest temperature
    on a 128-atom cell started from a frame rattled by ``rattle`` Å (a thermal spike, see
    ``docs/audit.md``): the pure NEP's atoms fall onto each other, the NEP-ZBL's do not.

    ``progress``: ``None`` or ``progress(done, total, label)`` for the data, dimer scans and MD;
    ``train_progress``: the trainer's ``progress`` (see :func:`nepzbl_plugin.train.train`);
    ``log``: called with each line of the report (``None``: silence).
    """
    import json

    from .audit.report import plot_comparison, report_json
    from .audit.stress_test import StressTestSettings
    from .audit.verdict import audit
    from .io.nep_txt import atomic_write_text
    from .io.xyz import write_train_xyz
    from .zbl import suggest_zbl

    progress = progress or None
    log = log or (lambda *_: None)
    try:
        from .train import train
    except ImportError as error:  # the trainer is a separate part of the package
        raise RuntimeError(f"the demo needs nepzbl's trainer: {error}") from error

    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    log(f"[1/4] generating {num_structures} EMT-labelled Cu-Ni frames (hot MD, no contact "
        f"below {CLOSE_CONTACT} Å)")
    structures = generate_alloy_data(num_structures, seed=seed, progress=progress)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(structures))
    n_test = max(1, len(structures) // 6)
    test = [structures[i] for i in order[:n_test]]
    train_set = [structures[i] for i in order[n_test:]]
    write_train_xyz(os.path.join(out_dir, "train.xyz"), train_set)
    write_train_xyz(os.path.join(out_dir, "test.xyz"), test)

    suggestion = suggest_zbl(train_set, ["Cu", "Ni"])
    log(f"[2/4] ZBL from data: {suggestion.form}, nep.in: {' / '.join(suggestion.nep_in_lines())}"
        f" (outer radii {', '.join(f'{p} {v:.2f} Å' for p, v in suggestion.outer.items())}; "
        f"data minimum {min(v for v in suggestion.data_min_distances.values() if v):.2f} Å)")
    suggestion.write(out_dir)

    models = {}
    errors = {}
    for label, zbl in (("NEP", None), ("NEP-ZBL", suggestion)):
        log(f"[3/4] training {label} ({train_epochs} epochs)")
        nep_in = demo_nep_in(zbl)
        model, _history = train(train_set, nep_in, test, seed=seed, epochs=train_epochs,
                                progress=train_progress,
                                log=lambda *a, **k: None)
        path = os.path.join(out_dir, f"{label.lower().replace('-', '_')}.txt")
        model.write(path)
        models[label] = path
        errors[label] = _rmse(model, test)
        log(f"      {label}: test RMSE energy {errors[label][0]:.2f} meV/atom, force "
            f"{errors[label][1]:.0f} meV/Å -> {path}")

    log(f"[4/4] auditing both models (dimer scans, data distances, hot MD from a start rattled "
        f"by {rattle:g} Å)")
    # the rattled start shows in one short run what a collapse path does to MD; knock-on
    # collisions at the default energy (3.2 eV at 1800 K) stay below this pure NEP's barriers of
    # 4 to 5 eV, which the dimer check reports anyway, so the demo leaves them out for speed
    settings = StressTestSettings(steps=md_steps, min_atoms=100, seed=seed, rattle=rattle,
                                  kicks_per_pair=0, num_threads=1)
    reports = [audit(models[label], data=train_set, name=label, hot_md=settings,
                     progress=progress) for label in models]
    labels = list(models)
    comparison = compare_reports(reports, labels, extra={
        f"test RMSE {k}": f"{v[0]:.2f} meV/atom, {v[1]:.0f} meV/Å" for k, v in errors.items()})
    png = os.path.join(out_dir, "demo_dimers.png")
    plot_comparison(reports, png, labels,
                    title="EMT Cu-Ni: pure NEP vs NEP-ZBL dimer curves (data distances shaded)")
    for report, label in zip(reports, labels, strict=False):
        atomic_write_text(os.path.join(out_dir, f"audit_{label.lower().replace('-', '_')}.json"),
                          report_json(report) + "\n")
    log("")
    log(comparison.text)
    log(f"\ndimer curves of both models: {png}")
    summary = {"out_dir": out_dir, "seconds": time.perf_counter() - start,
               "safe": {label: r.safe for label, r in zip(labels, reports, strict=False)},
               "test_rmse": {k: {"energy_meV_per_atom": v[0], "force_meV_per_A": v[1]}
                             for k, v in errors.items()},
               "zbl": suggestion.as_dict(), "pairs": comparison.rows, "png": png}
    atomic_write_text(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=1) + "\n")
    log(f"done in {summary['seconds']:.0f} s; files in {out_dir}/")
    return summary
