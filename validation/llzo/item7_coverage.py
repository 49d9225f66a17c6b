"""Item 7: how much of the Li environments of larger sets the 25 training configurations cover.

The Li per-atom NEP descriptors (the network input, scaled by the model's q_scaler) of
NEP25-ZBL on its 25 training configurations, on the 120 held-out frames (600, 900, 1200 K) and
on MD frames other items left in ``out/<size>/`` (item 6's active-learning runs, trajectories
of items 3 to 5) are mapped together (PCA; UMAP as well when umap-learn is installed).

Coverage is a number: the distance in descriptor space from each Li environment to its nearest
training environment, against the training set's own spread. The reference is the
leave-one-frame-out nearest-neighbour distance of every training environment (to the training
environments of the other 24 frames, as a held-out frame sees them); its 95th percentile is
the threshold. A set is covered as far as its environments fall within that threshold.
"""

from __future__ import annotations

from pathlib import Path

import common
import numpy as np

NUMBER = 7
TITLE = "Descriptor coverage of the 25 training configurations"

SETTINGS = {
    "smoke": {"held_out_frames": 4, "md_frames_per_file": 2, "md_files": 2,
              "max_points_per_set": 300, "percentile": 95.0},
    "cpu": {"held_out_frames": 120, "md_frames_per_file": 10, "md_files": 24,
            "max_points_per_set": 4000, "percentile": 95.0},
    "paper": {"held_out_frames": 120, "md_frames_per_file": 40, "md_files": 60,
              "max_points_per_set": 20000, "percentile": 95.0},
}
SPECIES = "Li"
LLZO = {"Li", "La", "Zr", "O"}


def _model(ctx) -> tuple[Path, str]:
    """NEP25-ZBL of item 2, else (item 2 not run) the paper's NEP802-ZBL: same descriptor
    header, so the same kind of map."""
    try:
        return ctx.model("NEP25-ZBL"), "NEP25-ZBL"
    except common.ItemNotRun:
        ctx.log("[7] item 2 has not run: descriptors of the paper's NEP802-ZBL instead")
        return ctx.model("NEP802-ZBL"), "NEP802-ZBL"


def _read(path: Path, count: int | None):
    """``count`` frames evenly spread over an extended XYZ file (all when None)."""
    from ase.io import read

    frames = read(str(path), index=":")
    if count is not None and len(frames) > count:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, count).round().astype(int)]
    for atoms in frames:
        atoms.calc = None
    return frames


def _md_files(ctx, limit: int) -> dict[str, list[Path]]:
    """MD trajectories other items left at this size: {label: files}."""
    found = {}
    for number in (6, 3, 4, 5):
        folder = ctx.out / f"item{number}"
        if not folder.is_dir():
            continue
        if number == 6:
            files = sorted(folder.glob("*/state/iter_*/md_run_*.xyz"))
        else:
            files = sorted(p for p in folder.rglob("*.xyz") if p.stat().st_size < 300e6)
        if files:
            found[f"MD of item {number}"] = files[:limit]
    md = ctx.out / "md"
    if md.is_dir():
        files = sorted(md.rglob("*.xyz"))[:limit]
        if files:
            found["MD (out/md)"] = files
    return found


def _li_descriptors(frames, model) -> np.ndarray:
    from nepzbl_plugin.analysis.descriptors import nep_descriptors

    descriptors, symbols = nep_descriptors(frames, str(model))
    return descriptors[symbols == SPECIES]


def _nearest(queries: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row."""
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    out = np.empty(len(queries))
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        d2 = np.einsum("ij,ij->i", q, q)[:, None] + ref_sq[None, :] - 2.0 * q @ reference.T
        out[start:start + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def _leave_one_frame_out(descriptors: np.ndarray, frame_of: np.ndarray) -> np.ndarray:
    out = np.empty(len(descriptors))
    for frame in np.unique(frame_of):
        mine = frame_of == frame
        out[mine] = _nearest(descriptors[mine], descriptors[~mine])
    return out


def run(ctx) -> dict:
    from nepzbl_plugin.analysis.descriptors import DescriptorMap, umap_available

    settings = ctx.settings(SETTINGS)
    model, model_name = _model(ctx)
    rng = np.random.default_rng(ctx.seed)
    train_frames = _read(common.DATA / "NEP25-ZBL" / "train.xyz", None)
    train_parts = [_li_descriptors([a], model) for a in train_frames]
    train = np.concatenate(train_parts)
    frame_of = np.concatenate([np.full(len(p), i) for i, p in enumerate(train_parts)])
    own = _leave_one_frame_out(train, frame_of)
    threshold = float(np.percentile(own, settings["percentile"]))
    ctx.log(f"[7] {len(train)} training Li environments ({model_name}); leave-one-frame-out "
            f"nearest distance median {np.median(own):.4f}, "
            f"{settings['percentile']:g}th percentile {threshold:.4f}")

    sets = {}
    per_file = max(1, settings["held_out_frames"] // 3)
    for path in sorted((common.DATA / "validation").glob("*.xyz"),
                       key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0)):
        label = f"held-out {path.stem.split('_')[-1]} K"
        sets[label] = {"frames": _read(path, per_file), "files": 1}
    for label, files in _md_files(ctx, settings["md_files"]).items():
        frames = []
        for path in files:
            try:
                chunk = _read(path, settings["md_frames_per_file"])
            except Exception as error:  # a file of another format: say so, keep the rest
                ctx.log(f"[7] skipped {path}: {error}")
                continue
            frames += [a for a in chunk if set(a.get_chemical_symbols()) <= LLZO
                       and SPECIES in a.get_chemical_symbols()]
        if frames:
            sets[label] = {"frames": frames, "files": len(files)}

    results = {}
    points = {"training (25 frames)": train}
    for label, entry in sets.items():
        descriptors = _li_descriptors(entry["frames"], model)
        if len(descriptors) > settings["max_points_per_set"]:
            keep = rng.choice(len(descriptors), settings["max_points_per_set"], replace=False)
            descriptors = descriptors[np.sort(keep)]
        distance = _nearest(descriptors, train)
        results[label] = {
            "frames": len(entry["frames"]), "files": entry["files"],
            "li_environments": int(len(descriptors)),
            "covered_fraction": float(np.mean(distance <= threshold)),
            "median_distance": float(np.median(distance)),
            "p95_distance": float(np.percentile(distance, 95)),
            "max_distance": float(distance.max()),
            "median_ratio": float(np.median(distance) / np.median(own)),
        }
        points[label] = descriptors
        ctx.log(f"[7] {label}: {len(descriptors)} Li, covered "
                f"{100 * results[label]['covered_fraction']:.1f} %, median distance "
                f"{results[label]['median_distance']:.4f}")
        results[label]["_distances"] = distance

    labels = np.concatenate([np.full(len(v), k) for k, v in points.items()])
    stacked = np.concatenate(list(points.values()))
    maps = {"pca": DescriptorMap("pca").compute(stacked, labels)}
    if umap_available():
        maps["umap"] = DescriptorMap("umap", seed=ctx.seed).compute(stacked, labels)
    figure = _plot(ctx, maps, results, own, threshold, model_name)
    for entry in results.values():
        entry.pop("_distances")
    return {"model": model_name, "species": SPECIES, "training_li": int(len(train)),
            "descriptor_dim": int(train.shape[1]), "percentile": settings["percentile"],
            "threshold": threshold, "training_lofo_median": float(np.median(own)),
            "sets": results, "maps": {k: m.as_dict() for k, m in maps.items()},
            "umap": "umap" in maps, "figure": figure}


def _plot(ctx, maps, results, own, threshold, model_name) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = "item7_coverage.png"
    panels = len(maps) + 1
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.2))
    colours = {}
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (method, descriptor_map) in zip(axes, maps.items(), strict=False):
        groups = descriptor_map.by_species()
        order = [k for k in groups if not k.startswith("training")] + \
            [k for k in groups if k.startswith("training")]
        for label in order:
            colours.setdefault(label, "k" if label.startswith("training")
                               else palette[len(colours) % len(palette)])
            xy = groups[label]
            ax.scatter(xy[:, 0], xy[:, 1], s=3 if not label.startswith("training") else 6,
                       alpha=0.5 if not label.startswith("training") else 0.9,
                       color=colours[label], label=f"{label} ({len(xy)})", rasterized=True)
        ratio = descriptor_map.explained_variance_ratio
        if ratio is not None:
            ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.0f} % of variance)")
            ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.0f} % of variance)")
        else:
            ax.set_xlabel("UMAP 1")
            ax.set_ylabel("UMAP 2")
        ax.set_title(f"Li NEP descriptors ({model_name}), {method.upper()}", fontsize=9)
        ax.legend(fontsize=6, markerscale=3)
    ax = axes[-1]
    top = max([np.percentile(own, 99.5)] + [np.percentile(r["_distances"], 99.5)
                                             for r in results.values()])
    bins = np.linspace(0.0, top, 60)
    ax.hist(own, bins=bins, histtype="step", color="k", density=True,
            label="training, leave one frame out")
    for label, r in results.items():
        ax.hist(r["_distances"], bins=bins, histtype="step", density=True,
                color=colours.get(label), label=label)
    ax.axvline(threshold, color="k", ls="--", lw=0.8, label="threshold (95th percentile)")
    ax.set_xlabel("distance to nearest training Li environment")
    ax.set_ylabel("density")
    ax.legend(fontsize=6)
    fig.tight_layout()
    ctx.save_figure(fig, name)
    plt.close(fig)
    return name


def rows(result, ctx) -> list[dict]:
    held = {k: v for k, v in result["sets"].items() if k.startswith("held-out")}
    md = {k: v for k, v in result["sets"].items() if not k.startswith("held-out")}
    text = ", ".join(f"{k.split()[-2]} K {100 * v['covered_fraction']:.0f} %"
                     for k, v in held.items())
    out = [{"quantity": "Li environments of the held-out frames within the training set's "
                        "own nearest-neighbour distance",
            "paper": "–", "ours": text,
            "run": f"{result['model']} descriptors, "
                   f"{sum(v['li_environments'] for v in held.values())} held-out and "
                   f"{result['training_li']} training Li"}]
    for label, v in md.items():
        out.append({"quantity": f"same, {label}", "paper": "–",
                    "ours": f"{100 * v['covered_fraction']:.0f} %",
                    "run": f"{v['li_environments']} Li from {v['frames']} frames"})
    return out


def section(result, ctx) -> str:
    table = []
    for label, v in result["sets"].items():
        table.append([label, v["frames"], v["li_environments"],
                      f"{100 * v['covered_fraction']:.1f} %",
                      f"{v['median_distance']:.4f}", f"{v['median_ratio']:.2f}",
                      f"{v['p95_distance']:.4f}", f"{v['max_distance']:.4f}"])
    pca = result["maps"]["pca"]["explained_variance_ratio"]
    lines = [
        f"Li per-atom NEP descriptors ({result['descriptor_dim']} numbers, the network input "
        f"scaled by the q_scaler) of {result['model']} on the 25 training configurations "
        f"({result['training_li']} Li environments), the held-out frames and any MD frames "
        "other items left at this size. For each environment: the Euclidean distance to the "
        "nearest training environment. The reference is the training set itself, each frame "
        "left out in turn (median "
        f"{result['training_lofo_median']:.4f}); its {result['percentile']:g}th percentile, "
        f"{result['threshold']:.4f}, is the threshold of *covered* (so the training frames "
        f"are {result['percentile']:g} % covered by construction).",
        "",
        common.md_table(["set", "frames", "Li environments", "covered",
                         "median distance", "median / training's", "95th percentile",
                         "largest"], table),
        "",
        ctx.figure_link(result["figure"], "Li descriptor map coloured by set, and the "
                        "distances to the nearest training environment"),
        "",
        f"The PCA's first two components hold {100 * pca[0]:.0f} % and {100 * pca[1]:.0f} % "
        "of the variance" + ("; UMAP is shown as well." if result["umap"] else
                             "; UMAP was not run (umap-learn is not installed)."),
        "",
        _reading(result),
    ]
    return "\n".join(lines)


def _reading(result) -> str:
    held = [(int("".join(c for c in k if c.isdigit())), v["covered_fraction"])
            for k, v in result["sets"].items() if k.startswith("held-out")]
    held.sort()
    falling = all(a[1] >= b[1] for a, b in zip(held, held[1:], strict=False))
    text = ("Reading: " + ", ".join(f"{100 * f:.0f} %" for _, f in held) + " of the held-out "
            "Li environments at " + ", ".join(f"{t} K" for t, _ in held) + " lie within the "
            "training set's own spread; ")
    text += ("coverage falls as the temperature rises, " if falling else
             "coverage does not fall steadily with the temperature, ")
    text += ("and the environments beyond the threshold are where the model extrapolates. "
             "This is the perspective's point that a small training set is judged by where "
             "production MD goes, not by its own RMSE.")
    return text


def verdict(result, ctx) -> str:
    covered = ", ".join(f"{name} {100 * s['covered_fraction']:.0f} %"
                        for name, s in result["sets"].items() if "covered_fraction" in s)
    return ("**Measured** (the paper shows the map only). Li environments within the 25 "
            f"configurations' own spread: {covered}.")
