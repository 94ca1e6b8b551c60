#!/usr/bin/env python3
"""Check text in the Prometheus text exposition format (0.0.4): every
line a HELP, a TYPE or a sample; metric and label names as the format
allows them; label values quoted with only \\\\, \\" and \\n escaped; each
sample's family typed once, before its samples, which stand together; no
series twice; values that parse as floats; a newline at the end.

usage: prom_check.py FILE"""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL}(?:,{LABEL})*)?\}})? (\S+)( -?[0-9]+)?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def fail(n, why):
    print(f"prom_check: line {n}: {why}", file=sys.stderr)
    sys.exit(1)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    if not text.endswith("\n"):
        fail(0, "no newline at the end")
    typed, seen, done, current = {}, set(), set(), None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            if not re.match(rf"^# HELP {NAME} .+$", line):
                fail(n, "a bad HELP line")
            continue
        if line.startswith("# TYPE "):
            m = re.match(rf"^# TYPE ({NAME}) (\S+)$", line)
            if not m or m.group(2) not in TYPES:
                fail(n, "a bad TYPE line")
            if m.group(1) in typed:
                fail(n, f"{m.group(1)} typed twice")
            typed[m.group(1)] = m.group(2)
            continue
        if line.startswith("#") or not line:
            fail(n, "neither a comment of the format nor a sample")
        m = SAMPLE.match(line)
        if not m:
            fail(n, f"not a sample: {line!r}")
        name = m.group(1)
        if name not in typed:
            fail(n, f"{name} has no TYPE before it")
        if name != current:
            if name in done:
                fail(n, f"the samples of {name} are not together")
            if current:
                done.add(current)
            current = name
        series = (name, m.group(2) or "")
        if series in seen:
            fail(n, f"{series} twice")
        seen.add(series)
        try:
            float(m.group(3))
        except ValueError:
            fail(n, f"value {m.group(3)!r}")
    if not seen:
        fail(0, "no samples")


main()
