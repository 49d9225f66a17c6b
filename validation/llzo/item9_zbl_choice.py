"""Item 9: the ZBL chosen from the data (``nepzbl zbl suggest``) against the paper's ``zbl 1.8``.

The paper switches the universal ZBL off between 0.9 and 1.8 Å for every pair. Where the data
hold pairs closer than 1.8 Å (Li-Li, Li-O, Zr-O in LLZO) the switching region overlaps the
data, so the network must learn to undo part of ZBL there. ``nepzbl zbl suggest`` puts each
pair's outer radius below the shortest distance of that pair in the data (a flexible ZBL
table). Item 2 trains both with the same input, seed and budget; this item follows them through
the other items:

* accuracy: held-out RMSE (item 2);
* robustness: the audit (dimer curves of every pair, and the hot-MD stress test: Langevin NVT at
  1300 K with knock-on collisions at the energy a long large run reaches);
* structure and transport: the shortest distances, g(r) below 1.5 Å and D_Li of the same MD
  runs items 3 and 4 use (:mod:`md_grid`; run here if those items did not);
* the tetragonal-cubic transition and active learning, where items 5 and 6 ran both models.
"""

from __future__ import annotations

import sys

import common
import md_grid

NUMBER = 9
TITLE = "ZBL chosen from the data (zbl suggest) against the paper's zbl 1.8"
MODELS = {"paper_zbl": "NEP25-ZBL", "suggested_zbl": "NEP25-ZBL-suggested"}
SETTINGS = {
    "smoke": {"temperatures_K": [1000], "stress_steps": 20, "kicks_per_pair": 0,
              "stress_T_K": 1300.0},
    "cpu": {"temperatures_K": [800, 1000, 1300], "stress_steps": 1000, "kicks_per_pair": 3,
            "stress_T_K": 1300.0},
    "paper": {"temperatures_K": [800, 900, 1000, 1100, 1200], "stress_steps": 1000,
              "kicks_per_pair": 3, "stress_T_K": 1300.0},
}


def _audit(ctx, name: str, s: dict) -> dict:
    from nepzbl_plugin.audit.stress_test import StressTestSettings
    from nepzbl_plugin.audit.verdict import audit

    settings = StressTestSettings(temperature=s["stress_T_K"], steps=s["stress_steps"],
                                  kicks_per_pair=s["kicks_per_pair"], seed=ctx.seed + 1,
                                  num_threads=ctx.threads)
    report = audit(str(ctx.trained_model(name)), data=str(common.DATA / "NEP25-ZBL" /
                                                          "train.xyz"),
                   name=name, hot_md=settings)
    stress = report.stress.as_dict() if report.stress is not None else {}
    barriers = {pair: a.barrier for pair, a in report.analyses.items() if a.barrier is not None}
    paths = [pair for pair, a in report.analyses.items() if a.collapse_path]
    knock = stress.get("knock_on") or {}
    return {
        "safe": bool(report.safe),
        "barriers_eV": barriers,
        "collapse_paths": paths,
        "checks": {k: c.as_dict() for k, c in report.checks.items()},
        "stress_min_distance_A": stress.get("min_distance"),
        "stress_collisions": knock.get("collisions"),
        "stress_kick_energy_eV": knock.get("energy_eV"),
        "stress_collapsed": bool(stress.get("collapse_onset_ps") is not None),
    }


def run(ctx) -> dict:
    s = ctx.settings(sys.modules[__name__])
    training = ctx.result(2)["variants"]
    result = {"variants": {}}
    for variant, name in MODELS.items():
        entry = {"model": name, "zbl": training[variant]["zbl"],
                 "held_out_meV": training[variant]["held_out_meV"]}
        entry["audit"] = _audit(ctx, name, s)
        ctx.log(f"{name}: audit {'safe' if entry['audit']['safe'] else 'UNSAFE'}, stress test "
                f"shortest distance {common.fmt(entry['audit']['stress_min_distance_A'], '.3f')} Å")
        result["variants"][variant] = entry
    pairs = [(name, T) for name in MODELS.values() for T in s["temperatures_K"]]
    for summary in md_grid.md_runs(ctx, pairs):
        variant = next(v for v, n in MODELS.items() if n == summary["model"])
        msd = summary.get("msd") or {}
        result["variants"][variant].setdefault("md", {})[f"{summary['temperature_K']:g}"] = {
            "status": summary["status"],
            "min_distance_A": summary.get("min_distance_A"),
            "min_distance_pair": summary.get("min_distance_pair"),
            "D_cm2_per_s": msd.get("D_cm2_per_s"),
            "D_error_cm2_per_s": msd.get("D_error_cm2_per_s"),
        }
    result["transition"] = _from_item(ctx, 5)
    result["active_learning"] = _from_item(ctx, 6)
    return result


def _from_item(ctx, number: int) -> dict:
    """Which of the two models items 5 (``models``) and 6 (its variants: ``zbl`` is
    NEP25-ZBL's input) ran at this size."""
    record = ctx.saved(number)
    if record is None:
        return {"note": f"item {number} has not run at this size"}
    result = record["result"]
    if number == 5:
        ran = set(result.get("models", []))
        temperatures = {}
        for name in MODELS.values():
            analysis = result.get("analysis", {}).get(name)
            if analysis:
                temperatures[name] = {
                    way: (analysis.get(way) or {}).get("transition_temperature_K")
                    for way in ("heating", "cooling")}
        return {"models_present": {name: name in ran for name in MODELS.values()},
                "transition_K": temperatures}
    variants = result.get("variants", {})
    keys = {"NEP25-ZBL": "zbl", "NEP25-ZBL-suggested": "suggested"}
    failures = {name: [r["failure_ratio"] for r in variants[key]["records"]]
                for name, key in keys.items() if key in variants}
    return {"models_present": {name: name in failures for name in MODELS.values()},
            "failure_ratio": failures,
            "final_size": {name: variants[key]["final_size"] for name, key in keys.items()
                           if key in variants},
            "last_audit_safe": {name: variants[key]["last_audit_safe"]
                                for name, key in keys.items() if key in variants}}


def _kelvin(value) -> str:
    return "none in range" if value is None else f"{value:.0f} K"


def _d(entry: dict | None) -> str:
    if not entry or entry.get("D_cm2_per_s") is None:
        return "–"
    error = entry.get("D_error_cm2_per_s")
    text = f"{entry['D_cm2_per_s']:.2e}"
    return text + (f" ± {error:.1e}" if error else "")


def rows(result, ctx) -> list[dict]:
    paper = result["variants"]["paper_zbl"]
    ours = result["variants"]["suggested_zbl"]
    hp, hs = paper["held_out_meV"], ours["held_out_meV"]
    T = "1000"
    return [
        {"quantity": "held-out force RMSE: zbl suggest against zbl 1.8",
         "paper": "(zbl 1.8 only)",
         "ours": f"{hs['force']:.1f} against {hp['force']:.1f} meV/Å "
                 f"({100 * (hs['force'] / hp['force'] - 1):+.0f} %)",
         "run": "item 2's two models, same seed and budget"},
        {"quantity": "robustness (audit: barriers, collapse paths, stress test at 1300 K)",
         "paper": "zbl 1.8: no collapse",
         "ours": f"zbl 1.8 {_verdict(paper)}; suggested {_verdict(ours)}",
         "run": "dimer scans of every pair, knock-on stress test"},
        {"quantity": f"D_Li at {T} K: suggested / zbl 1.8 (cm²/s)",
         "paper": "9.1-9.7e-6 (every model)",
         "ours": f"{_d(ours.get('md', {}).get(T))} / {_d(paper.get('md', {}).get(T))}",
         "run": "md_grid runs of items 3-4"},
    ]


def _verdict(entry: dict) -> str:
    audit = entry["audit"]
    text = "safe" if audit["safe"] else "UNSAFE"
    if audit["collapse_paths"]:
        text += f" (collapse paths: {', '.join(audit['collapse_paths'])})"
    if audit["stress_min_distance_A"] is not None:
        text += f", shortest {audit['stress_min_distance_A']:.2f} Å"
    return text


def section(result, ctx) -> str:
    names = {"paper_zbl": "NEP25-ZBL (zbl 1.8)", "suggested_zbl": "NEP25-ZBL-suggested"}
    table = []
    for variant, entry in result["variants"].items():
        h = entry["held_out_meV"]
        audit = entry["audit"]
        barriers = ", ".join(f"{k} {v:.2f} eV" for k, v in audit["barriers_eV"].items()) or "none"
        table.append([names[variant], entry["zbl"],
                      f"{h['energy']:.3f} / {h['force']:.1f} / {h['virial']:.2f}",
                      barriers, _verdict(entry)])
    md_rows = []
    temperatures = sorted({T for e in result["variants"].values() for T in e.get("md", {})},
                          key=float)
    for T in temperatures:
        cells = [f"{T} K"]
        for variant in ("paper_zbl", "suggested_zbl"):
            m = result["variants"][variant].get("md", {}).get(T)
            if m is None:
                cells += ["–", "–"]
                continue
            shortest = (f"{m['min_distance_A']:.2f} Å ({m['min_distance_pair']})"
                        if m.get("min_distance_A") is not None else "–")
            cells += [shortest + ("" if m["status"] == "ok" else f", {m['status']}"), _d(m)]
        md_rows.append(cells)
    hp = result["variants"]["paper_zbl"]["held_out_meV"]
    hs = result["variants"]["suggested_zbl"]["held_out_meV"]
    safe_both = all(e["audit"]["safe"] for e in result["variants"].values())
    others = []
    for key, label in (("transition", "Item 5 (transition)"),
                       ("active_learning", "Item 6 (active learning)")):
        info = result.get(key, {})
        if "note" in info:
            others.append(f"{label}: {info['note']}.")
        else:
            missing = [n for n, present in info["models_present"].items() if not present]
            text = f"{label} ran " + ("both models" if not missing else
                                      f"without {', '.join(missing)} at this size")
            if info.get("transition_K") and not missing:
                text += ": tetragonal-to-cubic on heating / cubic-to-tetragonal on cooling " + \
                    "; ".join(f"{name} {_kelvin(t['heating'])} / {_kelvin(t['cooling'])}"
                              for name, t in info["transition_K"].items())
                text += " (paper 880-915 K / 875 K; item 5 says what 192 atoms can resolve)"
            if info.get("failure_ratio") and not missing:
                label = {"NEP25-ZBL": "zbl 1.8", "NEP25-ZBL-suggested": "zbl suggest"}
                text += ": failure ratio per iteration " + "; ".join(
                    f"{label[name]} " + " / ".join(f"{100 * f:.1f}" for f in ratios)
                    + f" %, final set {info['final_size'][name]}, last audit "
                    + ("safe" if info["last_audit_safe"][name] else "UNSAFE")
                    for name, ratios in info["failure_ratio"].items())
            others.append(text + ".")
    return "\n".join([
        "Both models come from item 2 (same nep.in but for the ZBL lines, same seed and budget).",
        "",
        common.md_table(["model", "ZBL", "held-out E / F / V (meV/atom, meV/Å, meV/atom)",
                         "dimer barriers", "audit"], table),
        "",
        f"Accuracy: the ZBL from the data changes the held-out force RMSE by "
        f"{100 * (hs['force'] / hp['force'] - 1):+.0f} % and the energy RMSE by "
        f"{100 * (hs['energy'] / hp['energy'] - 1):+.0f} % with the same training budget. "
        + ("Robustness: both models pass the audit (no collapse path in any pair, no collapse "
           "under knock-on collisions at 1300 K), so the smaller radii keep what the paper's ZBL "
           "buys." if safe_both else
           "Robustness: the audit does not pass for both models; see the table."),
        "",
        "The same MD runs as items 3 and 4 (shortest distance of any pair, D_Li in cm²/s):",
        "",
        common.md_table(["T", "zbl 1.8: shortest", "zbl 1.8: D_Li", "suggested: shortest",
                         "suggested: D_Li"], md_rows),
        "",
        _transport(result),
        "",
        " ".join(others),
    ])


def _transport(result) -> str:
    """How far apart the two models' D_Li are, in their combined standard errors."""
    parts = []
    paper_md = result["variants"]["paper_zbl"].get("md", {})
    ours_md = result["variants"]["suggested_zbl"].get("md", {})
    for T in sorted(set(paper_md) & set(ours_md), key=float):
        a, b = paper_md[T], ours_md[T]
        if a.get("D_cm2_per_s") is None or b.get("D_cm2_per_s") is None:
            continue
        sigma = ((a.get("D_error_cm2_per_s") or 0.0) ** 2
                 + (b.get("D_error_cm2_per_s") or 0.0) ** 2) ** 0.5
        change = 100 * (b["D_cm2_per_s"] / a["D_cm2_per_s"] - 1)
        distance = abs(b["D_cm2_per_s"] - a["D_cm2_per_s"]) / sigma if sigma > 0 else None
        parts.append(f"{T} K {change:+.0f} %"
                     + (f" ({distance:.1f} standard errors)" if distance is not None else ""))
    if not parts:
        return "Transport: no diffusivity of both models at this size."
    return ("Transport: D_Li of the suggested-ZBL model against the zbl 1.8 model: "
            + ", ".join(parts) + ". The block errors of one run understate the scatter "
            "between runs (item 4: one model started from two frames at 800 K differs by a "
            "factor of 2 to 7), so no change of transport is established at this size; the "
            "paper size decides.")


def verdict(result, ctx) -> str:
    hp = result["variants"]["paper_zbl"]["held_out_meV"]
    hs = result["variants"]["suggested_zbl"]["held_out_meV"]
    safe = all(e["audit"]["safe"] for e in result["variants"].values())
    return (("**Better and as safe.** " if safe and hs["force"] < hp["force"] else
             "**See the section.** ")
            + f"The ZBL from the data: held-out force RMSE {hs['force']:.1f} against "
            f"{hp['force']:.1f} meV/Å ({100 * (hs['force'] / hp['force'] - 1):+.0f} %), audit "
            + ("safe for both" if safe else "not safe for both")
            + "; transport not distinguishable at this size.")
