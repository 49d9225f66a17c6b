"""Time reading and writing a GPUMD train.xyz of many frames (default 2000 x 192 atoms).

Usage: PYTHONPATH=. python benchmarks/bench_xyz.py [--frames 2000] [--atoms 192] [--repeat 3]

The file is generated in a temporary folder (energies, forces and virials, four species) and
deleted afterwards. Prints the best of ``--repeat`` wall times for read and write, in seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nepzbl_plugin.io.xyz import TrainingStructure, read_train_xyz, write_train_xyz


def make_structures(num_frames: int, num_atoms: int, seed: int = 0) -> list[TrainingStructure]:
    rng = np.random.default_rng(seed)
    species = np.array(["Li", "La", "Zr", "O"])
    frames = []
    for _ in range(num_frames):
        w = rng.normal(size=(3, 3))
        frames.append(
            TrainingStructure(
                symbols=list(species[rng.integers(0, 4, num_atoms)]),
                positions=rng.uniform(0, 13, (num_atoms, 3)),
                cell=np.diag(rng.uniform(12.5, 13.5, 3)) + rng.uniform(-0.3, 0.3, (3, 3)),
                energy=float(rng.uniform(-1500, -1400)),
                forces=rng.normal(size=(num_atoms, 3)),
                virial=w + w.T,
            )
        )
    return frames


def best_time(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--atoms", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames = make_structures(args.frames, args.atoms)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.xyz"
        t_write = best_time(lambda: write_train_xyz(path, frames), args.repeat)
        size_mb = path.stat().st_size / 1e6
        t_read = best_time(lambda: read_train_xyz(path), args.repeat)
        back = read_train_xyz(path)
    assert len(back) == len(frames)
    assert np.array_equal(back[-1].forces, frames[-1].forces)
    print(f"{args.frames} frames x {args.atoms} atoms ({size_mb:.1f} MB): "
          f"read {t_read:.2f} s, write {t_write:.2f} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
