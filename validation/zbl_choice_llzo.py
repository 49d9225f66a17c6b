"""Does ZBL chosen from the data beat the paper's universal ``zbl 1.8``? (issue: audit target 3)

Trains NEP25-ZBL (``../shared/data/llzo/NEP25-ZBL``: 25 frames of 192 atoms) twice with the same
optimiser, seed and wall-time budget:

* ``paper``: the paper's ``nep.in`` (universal ZBL, switching 0.9 to 1.8 Angstrom);
* ``suggested``: the same ``nep.in`` with the ZBL that ``nepzbl zbl suggest`` proposes for
  these data (radii below the shortest distance of each pair in the data);

then reports each model's held-out RMSE on ``llzo/validation/*.xyz`` (120 frames) and its audit
(dimer barriers and collapse paths for every pair, and a hot-MD stress test at 1300 K).

Usage::

    python validation/zbl_choice_llzo.py [--minutes 5] [--variant paper|suggested|both]
        [--md-steps 2000] [--out zbl_choice]

Run the two variants as two processes to train them side by side on a 2-core machine
(``--variant paper`` and ``--variant suggested``, one engine thread each), then
``--variant report`` prints the comparison from the saved JSON files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared")) / "data" / "llzo"


def _nep_in_variant(name):
    """The nep.in of a variant and a description of its ZBL: item 2 of the LLZO report
    (``validation/llzo/item2_training.py``) builds both."""
    folder = str(REPO / "validation" / "llzo")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from item2_training import nep_in_variant

    return nep_in_variant({"paper": "paper_zbl", "suggested": "suggested_zbl"}[name])


def run_variant(name, minutes, md_steps, out):
    from nepzbl_plugin.audit.stress_test import StressTestSettings
    from nepzbl_plugin.audit.verdict import audit
    from nepzbl_plugin.io.xyz import read_train_xyz
    from nepzbl_plugin.train import predict, train

    nep_in, description = _nep_in_variant(name)
    structures = read_train_xyz(DATA / "NEP25-ZBL" / "train.xyz", species=nep_in.types)
    held_out = [s for p in sorted((DATA / "validation").glob("*.xyz"))
                for s in read_train_xyz(p, species=nep_in.types)]
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"[{name}] {description}; training {minutes:g} min", flush=True)
    t0 = time.monotonic()
    model, history = train(structures, nep_in, output_dir=folder, seed=0,
                           max_time=60.0 * minutes, resume=False, progress=False,
                           log=lambda *a: None)
    wall = time.monotonic() - t0
    _, rmse = predict(model, held_out)
    print(f"[{name}] trained in {wall:.0f} s; held-out RMSE energy {rmse['energy'] * 1e3:.3f} "
          f"meV/atom, force {rmse['force'] * 1e3:.2f} meV/Å, virial {rmse['virial'] * 1e3:.3f} "
          "meV/atom", flush=True)
    settings = StressTestSettings(temperature=1300.0, steps=md_steps, num_threads=1)
    report = audit(model, data=str(DATA / "NEP25-ZBL" / "train.xyz"), hot_md=settings)
    result = {
        "variant": name, "zbl": description, "train_seconds": wall,
        "held_out_meV": {k: 1e3 * float(rmse[k]) for k in ("energy", "force", "virial")},
        "audit": report.as_dict(),
    }
    (folder / "result.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"[{name}] audit: {'SAFE' if report.safe else 'UNSAFE'}", flush=True)
    return result


def report(out):
    rows = []
    for name in ("paper", "suggested"):
        path = Path(out) / name / "result.json"
        if path.exists():
            rows.append(json.loads(path.read_text()))
    print(f"{'variant':<10} {'E (meV/atom)':>13} {'F (meV/Å)':>10} {'V (meV/atom)':>13} "
          f"{'audit':>7}  pairs with a barrier")
    for r in rows:
        h = r["held_out_meV"]
        pairs = r["audit"].get("pairs", {})
        barriers = ", ".join(f"{k} {v['barrier']:.2f} eV" for k, v in pairs.items()
                             if v.get("barrier") is not None) or "none"
        verdict = "safe" if r["audit"].get("safe") else "UNSAFE"
        print(f"{r['variant']:<10} {h['energy']:13.3f} {h['force']:10.2f} {h['virial']:13.3f} "
              f"{verdict:>7}  {barriers}")
        for check_name, check in r["audit"].get("checks", {}).items():
            print(f"           {check_name}: {check['status']}: {check['message']}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training time per model")
    parser.add_argument("--variant", default="both",
                        choices=("paper", "suggested", "both", "report"))
    parser.add_argument("--md-steps", type=int, default=2000, help="1 fs steps at 1300 K")
    parser.add_argument("--out", default="zbl_choice", help="output folder")
    args = parser.parse_args(argv)
    if not DATA.exists():
        sys.exit(f"needs the public data in {DATA}")
    if args.variant in ("paper", "both"):
        run_variant("paper", args.minutes, args.md_steps, args.out)
    if args.variant in ("suggested", "both"):
        run_variant("suggested", args.minutes, args.md_steps, args.out)
    if args.variant in ("both", "report"):
        report(args.out)


if __name__ == "__main__":
    main()
