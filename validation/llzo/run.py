"""Reproduce the NEP-ZBL paper (Yan, Fan and Zhu, arXiv 2504.15925) and the perspective's checks
(arXiv 2603.07425) on LLZO with nepzbl, and write REPORT.md: paper against ours, item by item.

    python validation/llzo/run.py --size cpu          # reduced sizes, about an hour on 2 cores
    python validation/llzo/run.py --size paper        # the paper's sizes: needs a GPU
    python validation/llzo/run.py --size smoke --out /tmp/llzo   # seconds: the plumbing only

Each item saves its result in ``out/<size>/results/itemN.json``; a second run skips the items
already done (``--force`` reruns them, ``--only 3 4`` runs just those) and rewrites the report
from every saved result. ``smoke`` writes its report into ``--out``; ``cpu`` and ``paper`` write
``validation/llzo/REPORT.md`` (``--report-dir`` elsewhere) with the figures in ``figures/``.
The data are read from ``../shared/data/llzo`` (or ``$NEPZBL_SHARED/data/llzo``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common  # noqa: E402  (this folder on sys.path first)

ITEMS = {
    1: "item1_dimers",
    2: "item2_training",
    3: "item3_rdf",
    4: "item4_diffusivity",
    5: "item5_transition",
    6: "item6_active_learning",
    7: "item7_coverage",
    8: "item8_perspective",
    9: "item9_zbl_choice",
}


def load_item(number: int):
    """The module of item ``number``, or None while it is not written."""
    try:
        return importlib.import_module(ITEMS[number])
    except ModuleNotFoundError as error:  # the item is not written yet
        if error.name != ITEMS[number]:
            raise
        return None


def run_item(number: int, ctx: common.Context) -> dict:
    """Run one item and save its record; returns the record."""
    item = load_item(number)
    if item is None:
        raise common.ItemNotRun(f"{ITEMS[number]}.py is not written yet")
    ctx.log(f"== item {number}: {item.TITLE} ({ctx.size})")
    t0 = time.monotonic()
    result = item.run(ctx)
    wall = time.monotonic() - t0
    record = {"item": number, "title": item.TITLE, "size": ctx.size, "wall_s": wall,
              "settings": ctx.settings(item), "finished": _now(), "result": result}
    common.write_json(ctx.result_path(number), record)
    ctx.log(f"== item {number} done in {wall:.0f} s")
    return record


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(common.REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _wall(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.0f} min"


def _cell(text) -> str:
    """Table cell text: a "|" would end the cell."""
    return str(text).replace("|", "\\|")


def write_report(ctx: common.Context) -> Path:
    """REPORT.md from every saved result of this size."""
    import nepzbl_plugin

    records = {n: ctx.saved(n) for n in ITEMS}
    done = {n: r for n, r in records.items() if r is not None}
    total = sum(r["wall_s"] for r in done.values())
    lines = [
        "# LLZO: the NEP-ZBL paper and the perspective, reproduced with nepzbl",
        "",
        "Written by `python validation/llzo/run.py --size " + ctx.size + "`. The paper is Yan, Fan "
        "and Zhu, *NEP-ZBL* (arXiv 2504.15925), on the solid electrolyte Li7La3Zr2O12; the "
        "perspective is arXiv 2603.07425. Inputs are the authors' own (`../shared/data/llzo`: "
        "NEPstd, NEP802, NEP802-ZBL, the 25 configurations and nep.in of NEP25-ZBL, 120 held-out "
        "frames). NEPstd plays DFT, as in the paper.",
        "",
        f"- size: **{ctx.size}** (what each item ran is in its row and section; `--size paper` "
        "runs the paper's sizes on a GPU)",
        f"- machine: {common.machine()}; {ctx.threads} cores used",
        f"- nepzbl {getattr(nepzbl_plugin, '__version__', '?')}, commit {_commit()}; "
        f"report written {_now()}",
        f"- wall time of the items: {_wall(total)} in all, as last run (an item that reused "
        "saved MD runs counts only its analysis; each section states what its MD cost)",
        "",
        "## Verdict at this size",
        "",
        "VERDICTS",
        "",
        "## Summary: the paper against nepzbl",
        "",
        "| item | quantity | paper | nepzbl | run | wall |",
        "|---:|---|---|---|---|---:|",
    ]
    sections, verdicts = [], []
    for number in ITEMS:
        item = load_item(number)
        record = done.get(number)
        if item is None:
            lines.append(f"| {number} | {ITEMS[number]} | | not written yet | | |")
            continue
        if record is None:
            lines.append(f"| {number} | {item.TITLE} | | not run at this size | | |")
            sections += [f"## {number}. {item.TITLE}", "", "Not run at this size.", ""]
            continue
        if hasattr(item, "verdict"):
            verdicts.append(f"{number}. {item.TITLE}: {item.verdict(record['result'], ctx)}")
        for i, row in enumerate(item.rows(record["result"], ctx)):
            wall = _wall(record["wall_s"]) if i == 0 else ""
            cells = [_cell(row[key]) for key in ("quantity", "paper", "ours", "run")]
            lines.append(f"| {number} | " + " | ".join(cells) + f" | {wall} |")
        sections += [f"## {number}. {item.TITLE}", "",
                     f"*{_wall(record['wall_s'])}, finished {record['finished']}.*", "",
                     item.section(record["result"], ctx).rstrip(), ""]
        if ctx.size == "smoke":
            sections += ["*smoke size: tens of steps, the plumbing only; the numbers mean "
                         "nothing.*", ""]
    verdict_text = "\n".join(verdicts) if verdicts else "No item has run at this size."
    lines[lines.index("VERDICTS")] = verdict_text
    text = "\n".join(lines + [""] + sections).rstrip() + "\n"
    path = ctx.report_dir / "REPORT.md"
    common.write_text(path, text)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--size", choices=common.SIZES, default="cpu",
                        help="smoke: seconds; cpu: reduced, about an hour on 2 cores; "
                             "paper: the paper's sizes on a GPU (default cpu)")
    parser.add_argument("--only", type=int, nargs="+", choices=sorted(ITEMS), metavar="N",
                        help="run only these items (1 to 9), even if saved")
    parser.add_argument("--force", action="store_true", help="rerun items already saved")
    parser.add_argument("--report-only", action="store_true",
                        help="write REPORT.md from the saved results; run nothing")
    parser.add_argument("--out", type=Path, help="raw outputs (default validation/llzo/out/SIZE)")
    parser.add_argument("--report-dir", type=Path,
                        help="where REPORT.md and figures/ go (default: --out for smoke, "
                             "validation/llzo for cpu and paper)")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16),
                        help="cores to use (default all, at most 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    args = parser.parse_args(argv)

    if not (common.DATA / "NEPstd.txt").is_file():
        print(f"run.py: needs the paper's data in {common.DATA} (set NEPZBL_SHARED)",
              file=sys.stderr)
        return 2
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    common.import_package()
    if args.size == "paper" and not args.report_only and common.gpu_name() is None:
        # 12288-atom runs of 100 ps and more: days on a CPU
        print("run.py: --size paper needs a GPU for nepzbl's CUDA engine and found none; "
              "use --size cpu", file=sys.stderr)
        return 2
    out = args.out or HERE / "out" / args.size
    report_dir = args.report_dir or (out if args.size == "smoke" else HERE)
    ctx = common.Context(size=args.size, out=out, report_dir=report_dir, threads=args.threads,
                         seed=args.seed, log=lambda m: print(m, flush=True))

    failed = []
    if not args.report_only:
        numbers = args.only or sorted(ITEMS)
        for number in numbers:
            if ctx.saved(number) is not None and not (args.force or args.only):
                ctx.log(f"== item {number}: saved in {ctx.result_path(number)}; skipped "
                        "(--force reruns it)")
                continue
            try:
                run_item(number, ctx)
            except common.ItemNotRun as error:
                ctx.log(f"== item {number} cannot run yet: {error}")
                failed.append(number)
            except Exception:  # one broken item must not lose the others' report
                traceback.print_exc()
                ctx.log(f"== item {number} FAILED (traceback above)")
                failed.append(number)
    path = write_report(ctx)
    print(f"report: {path}" + (f"; items that failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
