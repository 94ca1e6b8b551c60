#!/usr/bin/env python3
"""Check a SARIF log against what the SARIF 2.1.0 schema requires of the
objects boxguard writes (sarifLog, run, tool, toolComponent,
reportingDescriptor, result, message, location, physicalLocation,
artifactLocation, region), and what GitHub code scanning needs on top:
a ruleId per result that names a rule, a relative uri, a startLine from 1,
partialFingerprints. The schema itself is not at hand offline; these are
its "required" members and value constraints, written out.

usage: sarif_check.py FILE EXPECT   (EXPECT: 0 no results, 1 some)"""
import json
import sys

LEVELS = {"none", "note", "warning", "error"}


def fail(why):
    print("sarif_check: " + why, file=sys.stderr)
    sys.exit(1)


def need(obj, key, kind, where):
    if not isinstance(obj, dict) or key not in obj:
        fail(f"{where}: required member '{key}' missing")
    if not isinstance(obj[key], kind):
        fail(f"{where}.{key}: not a {kind.__name__}")
    return obj[key]


def message(m, where):
    if not isinstance(m, dict) or not (isinstance(m.get("text"), str)
                                       or isinstance(m.get("id"), str)):
        fail(f"{where}: a message needs 'text' or 'id'")


def main():
    path, expect = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        log = json.load(f)
    if need(log, "version", str, "sarifLog") != "2.1.0":
        fail("sarifLog.version is not 2.1.0")
    runs = need(log, "runs", list, "sarifLog")
    if len(runs) != 1:
        fail("one run expected")
    run = runs[0]
    driver = need(need(run, "tool", dict, "run"), "driver", dict, "tool")
    need(driver, "name", str, "toolComponent")
    rules = need(driver, "rules", list, "toolComponent")
    ids = []
    for i, r in enumerate(rules):
        ids.append(need(r, "id", str, f"rules[{i}]"))
        if "shortDescription" in r:
            need(r["shortDescription"], "text", str, f"rules[{i}].shortDescription")
        lvl = r.get("defaultConfiguration", {}).get("level", "warning")
        if lvl not in LEVELS:
            fail(f"rules[{i}]: level {lvl}")
    if len(set(ids)) != len(ids):
        fail("two rules share an id")
    results = need(run, "results", list, "run")
    if (expect == "0") != (not results):
        fail(f"expected {'no' if expect == '0' else 'some'} results, got {len(results)}")
    for i, r in enumerate(results):
        w = f"results[{i}]"
        message(r.get("message"), w + ".message")
        rid = need(r, "ruleId", str, w)
        k = need(r, "ruleIndex", int, w)
        if not 0 <= k < len(ids) or ids[k] != rid:
            fail(f"{w}: ruleIndex {k} does not name rule {rid}")
        if r.get("level", "warning") not in LEVELS:
            fail(f"{w}: level")
        locs = need(r, "locations", list, w)
        if not locs:
            fail(f"{w}: no location")
        phys = need(locs[0], "physicalLocation", dict, w + ".locations[0]")
        uri = need(need(phys, "artifactLocation", dict, w), "uri", str, w)
        if uri.startswith("/") or uri.startswith("./") or not uri:
            fail(f"{w}: uri '{uri}' is not relative to the checkout")
        if "region" in phys:
            line = need(phys["region"], "startLine", int, w + ".region")
            if line < 1:
                fail(f"{w}: startLine {line}")
        fps = need(r, "partialFingerprints", dict, w)
        if not fps or not all(isinstance(v, str) and v for v in fps.values()):
            fail(f"{w}: partialFingerprints")


main()
