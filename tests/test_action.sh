#!/usr/bin/env bash
# boxguard's GitHub Action for other repositories (action.yml, its script
# ci/action/typeids.sh) on sample Flutter trees as a runner would run it
# ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY); every workflow and the action
# validated against GitHub's schemas (action-validator, from npm through
# ci/setup); the README's example workflow is the checked one; ctest's
# JUnit XML.
# usage: test_action.sh SOURCE_DIR path/to/boxguard
set -u
ROOT=${1:?usage: test_action.sh SOURCE_DIR BOXGUARD}
BG=${2:?usage: test_action.sh SOURCE_DIR BOXGUARD}
BG=$(cd "$(dirname "$BG")" && pwd)/$(basename "$BG") # the test cds below
ROOT=$(cd "$ROOT" && pwd)
source "$(dirname "$0")/lib.sh"
S=$ROOT/ci/action/typeids.sh

# GitHub's schemas.
if command -v action-validator >/dev/null; then
  for f in "$ROOT/action.yml" "$ROOT"/.github/workflows/*.yml "$ROOT/examples/typeids-workflow.yml"; do
    expect 0 "valid against GitHub's schema: ${f#"$ROOT"/}" -- action-validator "$f"
  done
  printf 'name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n' >"$T/bad.yml"
  expect 1 "the validator refuses a broken workflow" -- action-validator "$T/bad.yml"
else
  check "action-validator is installed (ci/setup installs it from npm)" -- false
fi
check "the action runs the script" -- grep -q 'ci/action/typeids.sh" check' "$ROOT/action.yml"
check "it uploads SARIF" -- grep -q 'github/codeql-action/upload-sarif@' "$ROOT/action.yml"
awk '/^```yaml$/ {b=1; next} b && /^```$/ {exit} b' "$ROOT/README.md" >"$T/readme.yml"
check "the README's example workflow is examples/typeids-workflow.yml" -- cmp "$T/readme.yml" "$ROOT/examples/typeids-workflow.yml"

# A Flutter app: clean, then with a collision.
A=$T/app
mkdir -p "$A/lib"
cat >"$A/pubspec.yaml" <<'YAML'
name: app
dependencies:
  hive_ce: ^2.11.0
YAML
cat >"$A/lib/ids.dart" <<'DART'
class Ids { static const int note = 1; static const int tag = 2; }
DART
cat >"$A/lib/models.dart" <<'DART'
@HiveType(typeId: Ids.note)
class Note {}
@HiveType(typeId: Ids.tag)
class Tag {}
void main() { Hive..registerAdapter(NoteAdapter())..registerAdapter(TagAdapter()); }
DART
cd "$A" || exit 3
export BOXGUARD_BIN=$BG GITHUB_OUTPUT=$T/output GITHUB_STEP_SUMMARY=$T/summary
export BG_PATHS="lib" BG_LOCK=typeids.lock BG_SARIF=$T/a.sarif
expect 0 "build: uses the boxguard given" -- "$S" build
check "says so" -- has "boxguard: using $BG"
expect 2 "no lock yet" -- "$S" check
check "says how to make one" -- grep -q "::error title=typeids::no lock file 'typeids.lock': create it with" "$T/out"
"$BG" typeids check --update-lock --lock typeids.lock lib >/dev/null
: >"$GITHUB_OUTPUT"
expect 0 "a clean app" -- "$S" check
check "findings=0" -- grep -qx "findings=0" "$GITHUB_OUTPUT"
check "the SARIF path" -- grep -qx "sarif=$T/a.sarif" "$GITHUB_OUTPUT"
check "valid SARIF" -- python3 "$ROOT/tests/sarif_check.py" "$T/a.sarif" 0
check "the job summary" -- grep -q "0 findings" "$T/summary"
sed -i 's/static const int tag = 2;/static const int tag = 1;/' lib/ids.dart
: >"$GITHUB_OUTPUT"
expect 1 "a collision (and the lock's typeId moved)" -- "$S" check
check "findings counted" -- grep -qE "^findings=[1-9]" "$GITHUB_OUTPUT"
check "annotated" -- grep -q "^::error file=lib/models.dart,line=3,title=typeids collision::" "$T/out"
check "in the SARIF" -- python3 "$ROOT/tests/sarif_check.py" "$T/a.sarif" 1
check "relative paths in it" -- grep -q '"uri":[[:space:]]*"lib/models.dart"' "$T/a.sarif"
export BG_PATHS="nowhere"
expect 2 "a path that does not exist" -- "$S" check
check "no SARIF left" -- test ! -e "$T/a.sarif"
expect 2 "no step named" -- "$S"

# ctest's JUnit XML, as ci/test writes it for the workflow to upload.
cd "$ROOT" || exit 3
expect 0 "ctest --output-junit" -- ctest --test-dir "$(dirname "$(dirname "$BG")")" -R '^err$' --output-junit "$T/junit.xml"
check "a JUnit test suite of that test" -- python3 -c '
import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot()
s = r if r.tag == "testsuite" else r.find("testsuite")
cases = s.findall("testcase")
sys.exit(0 if s is not None and len(cases) == 1 and cases[0].get("name") == "err"
         and cases[0].find("failure") is None else 1)' "$T/junit.xml"

finish "action"
