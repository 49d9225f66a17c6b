"""Neighbour counts on the cutoff line: counted as GPUMD does, checked by brute force (ASE)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nepzbl_plugin.io.nep_in import parse_nep_in, read_nep_in
from nepzbl_plugin.io.xyz import TrainingStructure, read_train_xyz
from nepzbl_plugin.model import Model
from nepzbl_plugin.neighbours import max_neighbour_counts, set_neighbour_counts
from nepzbl_plugin.testing import random_model

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _ase_counts(model, structures) -> tuple[int, int]:
    """Brute force with ASE: per-atom radii rc_t / 2 give the pair cutoff (rc_a + rc_b) / 2."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list

    best = [0, 0]
    for s in structures:
        atoms = Atoms(symbols=s.symbols, positions=s.positions, cell=s.cell, pbc=True)
        index = [model.types.index(x) for x in s.symbols]
        for k, cutoffs in enumerate((model.radial_cutoffs, model.angular_cutoffs)):
            radii = [0.5 * cutoffs[t] for t in index]
            first = neighbor_list("i", atoms, radii, self_interaction=False)
            counts = np.bincount(first, minlength=len(atoms))
            best[k] = max(best[k], int(counts.max()))
    return best[0], best[1]


def _structure(symbols, positions, cell):
    n = len(symbols)
    return TrainingStructure(symbols=list(symbols), positions=np.asarray(positions, float),
                             cell=np.asarray(cell, float), pbc=np.ones(3, bool), energy=0.0,
                             forces=np.zeros((n, 3)))


def test_small_cell_counts_every_image_and_per_type_cutoffs():
    # one atom in a 2 Å simple-cubic cell: 6 images at 2 Å, 12 at 2.83, 8 at 3.46, 6 at 4 Å
    model = random_model(version=4, types=("Si",), seed=1)
    model.radial_cutoffs[:] = 4.1
    model.angular_cutoffs[:] = 3.0
    cube = _structure(["Si"], [[0, 0, 0]], 2.0 * np.eye(3))
    assert max_neighbour_counts(model, [cube]) == (32, 18)
    # per-type cutoffs: the pair cutoff is the mean of the two types' values
    two = random_model(version=4, types=("Si", "O"), seed=1)
    two.radial_cutoffs[:] = (6.0, 4.0)
    two.angular_cutoffs[:] = (4.0, 3.0)
    pair = _structure(["Si", "O"], [[0, 0, 0], [4.9, 0, 0]], 20.0 * np.eye(3))
    assert max_neighbour_counts(two, [pair]) == (1, 0)  # 4.9 < (6+4)/2 = 5
    pair.positions[1, 0] = 5.1
    assert max_neighbour_counts(two, [pair]) == (0, 0)
    assert _ase_counts(two, [pair]) == (0, 0)


def test_model_without_data_keeps_its_counts():
    model = random_model(version=4, types=("Si",), seed=1, max_neighbors=(40, 20))
    assert set_neighbour_counts(model, [], None) == (40, 20)


@pytest.mark.parametrize("name, gpumd", [("pbte", (73, 8)), ("llzo/NEP25-ZBL", (95, 29))])
def test_nepzbl_train_writes_the_datas_largest_counts(tmp_path, name, gpumd):
    folder = DATA / name
    if not (folder / "train.xyz").exists():
        pytest.skip(f"{folder} absent")
    from nepzbl_plugin.cli import main
    from nepzbl_plugin.model import read_model

    for f in ("nep.in", "train.xyz"):
        shutil.copy(folder / f, tmp_path / f)
    nep_in = read_nep_in(tmp_path / "nep.in")
    structures = read_train_xyz(tmp_path / "train.xyz", species=nep_in.types)
    brute = _ase_counts(Model.from_nep_in(nep_in), structures)
    # GPUMD's own models trained on these data carry the same counts (PbTe_NEP4.txt: 73 8;
    # the paper's NEP25-ZBL: 95 29)
    assert brute == gpumd
    assert main([ "train", str(tmp_path), "--epochs", "1", "--no-progress"]) == 0
    model = read_model(tmp_path / "nep.txt")
    assert (model.max_neighbors_radial, model.max_neighbors_angular) == brute
    line = next(x for x in (tmp_path / "nep.txt").read_text().splitlines()
                if x.startswith("cutoff"))
    assert line.split()[-2:] == [str(brute[0]), str(brute[1])]


def test_train_api_counts_train_and_test_sets():
    from nepzbl_plugin.train import train

    rng = np.random.default_rng(0)

    def frame(a):
        pos = rng.uniform(0, a, (4, 3))
        s = _structure(["Si"] * 4, pos, a * np.eye(3))
        s.energy = float(rng.normal())
        s.forces = rng.normal(size=(4, 3))
        return s

    nep = parse_nep_in("type 1 Si\ncutoff 5 3.5\nn_max 2 2\nbasis_size 2 2\nl_max 2\n"
                       "neuron 3\n")
    train_set, test_set = [frame(6.0)], [frame(4.0)]  # the denser test frame has more
    model, _ = train(train_set, nep, test_set, epochs=1, log=None)
    expected = max_neighbour_counts(model, train_set, test_set)
    assert expected == _ase_counts(model, train_set + test_set)
    assert expected != max_neighbour_counts(model, train_set)
    assert (model.max_neighbors_radial, model.max_neighbors_angular) == expected


def test_the_c_engine_counts_as_numpy_does():
    """engine.cpu.neighbour_counts (the C cell list, which the trainer uses) against the numpy
    count, atom by atom: triclinic cells, cells thinner than the cutoff (many images of an
    atom and of itself), per-type cutoffs of three species, an empty frame; two atoms at one
    place, which the C list refuses, are counted by numpy."""
    from nepzbl_plugin.engine.cpu import neighbour_counts as c_counts
    from nepzbl_plugin.neighbours import neighbour_counts as numpy_counts

    rng = np.random.default_rng(3)
    model = random_model(version=4, types=("Si", "O", "Li"), seed=2)
    model.radial_cutoffs[:] = (5.0, 4.0, 6.0)
    model.angular_cutoffs[:] = (3.5, 3.0, 4.0)
    compared = 0
    for size, n in [(2.5, 1), (3.0, 3), (5.0, 10), (9.0, 40), (14.0, 120)]:
        for _ in range(3):
            cell = size * np.eye(3) + rng.normal(0, 0.2 * size, (3, 3)) * (size < 9)
            positions = rng.uniform(-0.2, 1.2, (n, 3)) @ cell  # some outside the cell
            frame = _structure(rng.choice(model.types, n), positions, cell)
            want, got = numpy_counts(model, frame), c_counts(model, frame)
            for w, g in zip(want, got, strict=True):
                assert g.dtype == np.int64 and np.array_equal(g, w), (size, n, w, g)
            compared += n
    assert compared == 3 * (1 + 3 + 10 + 40 + 120)
    assert max_neighbour_counts(model, [frame], count=c_counts) == max_neighbour_counts(
        model, [frame])
    empty = _structure([], np.zeros((0, 3)), 5.0 * np.eye(3))
    assert [len(c) for c in c_counts(model, empty)] == [0, 0]
    twins = _structure(["Si", "O", "O"], [[1, 1, 1], [1, 1, 1], [2.5, 1, 1]], 6.0 * np.eye(3))
    for w, g in zip(numpy_counts(model, twins), c_counts(model, twins), strict=True):
        assert np.array_equal(g, w)


def test_atoms_outside_the_cell_count_every_image():
    """An atom 0.2 cells outside a 9 Å cell has a neighbour one image and two images away
    (3.6 and 5.4 Å, cutoff 6 Å): counted since the numpy count wraps positions first (it
    missed the second before 2026-12-01), by the C count, and by ASE."""
    from nepzbl_plugin.engine.cpu import neighbour_counts as c_counts
    from nepzbl_plugin.neighbours import neighbour_counts as numpy_counts

    model = random_model(version=4, types=("Si",), seed=1)
    model.radial_cutoffs[:] = 6.0
    model.angular_cutoffs[:] = 4.0
    far = _structure(["Si", "Si"], [[-1.8, 1, 1], [10.8, 1, 1]], 9.0 * np.eye(3))
    for count in (numpy_counts, c_counts):
        radial, angular = count(model, far)
        assert radial.tolist() == [2, 2] and angular.tolist() == [1, 1], count
    assert _ase_counts(model, [far]) == (2, 1)
