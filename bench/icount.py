#!/usr/bin/env python3
"""Instruction counts of boxguard's CPU-bound paths against a committed
baseline: the gate of ci/icount. Counts (callgrind's Ir per operation)
do not move with the machine's load, so the band is tight; a path over
it fails, one under it by more than the band asks for a baseline update.
A baseline from another compiler is reported, not compared.

usage: icount.py CURRENT.json BASELINE.json REPORT.md [--band FRACTION]
Exits 1 when a path regressed beyond the band, 2 on bad input."""
import json
import sys


def main():
    args = sys.argv[1:]
    band = 0.02
    if "--band" in args:
        k = args.index("--band")
        band = float(args[k + 1])
        del args[k:k + 2]
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    cur_path, base_path, out_path = args
    cur = json.load(open(cur_path))
    try:
        base = json.load(open(base_path))
    except FileNotFoundError:
        base = None
    md = ["# Instruction counts (callgrind, per operation)", "",
          "build: %s" % cur.get("build", "?"), ""]
    comparable = base is not None and base.get("build") == cur.get("build")
    if base is None:
        md.append("No baseline (%s): nothing compared." % base_path)
    elif not comparable:
        md.append("The baseline is of another build (%s): reported, not "
                  "compared." % base.get("build"))
    md += ["", "| path | baseline Ir/op | now Ir/op | change | verdict |",
           "|---|---|---|---|---|"]
    bad = []
    for name, now in cur["paths"].items():
        was = (base or {}).get("paths", {}).get(name)
        if was is None or not comparable:
            md.append("| %s | %s | %.0f | | %s |" % (
                name, "%.0f" % was if was else "-", now, "not compared"))
            continue
        change = now / was - 1.0
        verdict = "ok"
        eps = 1e-9  # at the band exactly is within it, whatever the rounding
        if change > band + eps:
            verdict = "**regressed**"
            bad.append((name, was, now, change))
        elif change < -band - eps:
            verdict = "faster: update the baseline"
        md.append("| %s | %.0f | %.0f | %+.2f%% | %s |" % (
            name, was, now, 100 * change, verdict))
    md += ["", "A path regresses when it costs more than %.1f%% over the "
           "baseline (bench/icount-baseline.json)." % (100 * band)]
    with open(out_path, "w") as f:
        f.write("\n".join(md) + "\n")
    for name, was, now, change in bad:
        print("icount: REGRESSION %s: %.0f -> %.0f instructions per op "
              "(%+.2f%%, band %.1f%%)" % (name, was, now, 100 * change,
                                          100 * band))
    print("icount: %d paths, %d regressed; report: %s" % (
        len(cur["paths"]), len(bad), out_path))
    return 1 if bad else 0


sys.exit(main())
