"""``nepzbl al --example emt DIR``: a complete toy run with ASE's EMT as the oracle.

Cu-Ni fcc cells of 32 atoms, rattled and strained, labelled by EMT; a tiny NEP (cutoffs 4/3.5 Å,
8 neurons); two iterations of two short Langevin ramps; small trainings. It runs in well under a
minute on two cores and is the CI test of the loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_text

__all__ = ["write_example", "EXAMPLES", "emt_start_data"]

EXAMPLES = ("emt",)

NEP_IN = """\
type 2 Cu Ni
cutoff 4.0 3.5
n_max 3 2
basis_size 4 4
l_max 4 0 0
neuron 8
lambda_v 0.1
"""

CONFIG = """\
# nepzbl al: a toy active-learning run with ASE's EMT as the oracle (Cu-Ni, 32-atom cells).
# Run it with:  nepzbl al {config}
state = "al-state"          # the run's folder: data, models, logs of every iteration
seed = 0
threads = 1                 # threads of nepzbl's engine

[data]
train = "train.xyz"         # labelled start set (extended XYZ)
nep_in = "nep.in"           # model header and loss weights; no model given: trained first

[oracle]
calculator = "ase.calculators.emt:EMT"   # module:callable, a nep.txt, or "external"

[md]                        # defaults of every MD run
steps = 60                  # steps per run
timestep = 2.0              # fs
friction = 0.02             # 1/fs (Langevin)
sample_interval = 6         # steps between candidate frames

[[iteration]]
runs = 2
temperature = [300, 900]    # K, linear ramp

[[iteration]]
runs = 2
temperature = [900, 1500]

[selection]
method = "fps"              # "fps" (the paper's) or "maxvol"
min_distance = 0.002        # in structure-averaged descriptor space
max_frames = 4

[filter]
fraction = 0.6              # too short: below 0.6 x the data's shortest pair distance

[training]
min_new_frames = 3          # retrain only when this many new frames came in
epochs = 10                 # per (fine-tuning) training
fine_tune = true

[audit]
enabled = true              # dimer scans and data distances of every new model
hot_md = false
"""


def emt_start_data(count: int = 8, seed: int = 0) -> list:
    """``count`` EMT-labelled Cu-Ni fcc cells of 32 atoms, strained by up to 2 % and rattled by
    0.05 Å, as :class:`~nepzbl_plugin.io.xyz.TrainingStructure`."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from .oracle import label_frames

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        atoms = bulk("Cu", "fcc", a=3.565, cubic=True).repeat(2)
        atoms.set_chemical_symbols(list(np.where(rng.random(len(atoms)) < 0.5, "Ni", "Cu")))
        strain = np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))
        atoms.set_cell(atoms.cell.array @ (0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        frames.append(atoms)
    return label_frames(frames, EMT(), config_type="emt_start")


def write_example(name: str, directory) -> Path:
    """Write ``DIR/al.toml``, ``DIR/nep.in`` and ``DIR/train.xyz`` of example ``name``;
    returns the config path."""
    from ..errors import NepzblError
    from ..io.xyz import write_train_xyz

    if name not in EXAMPLES:
        raise NepzblError(f"unknown example {name!r}; choose from {', '.join(EXAMPLES)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "al.toml"
    write_train_xyz(directory / "train.xyz", emt_start_data())
    atomic_write_text(directory / "nep.in", NEP_IN)
    atomic_write_text(config, CONFIG.format(config=config))
    return config
