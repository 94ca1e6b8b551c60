#!/usr/bin/env bash
# boxguard typeids check on trees shaped like real Flutter apps: typeIds
# written as constants (a class of static consts, top-level consts, an
# import prefix, a hand-written adapter, a constant in another package),
# one that resolves to nothing (reported once, nothing cascading), the
# range of hive and of hive_ce by its locked version, hive_ce_flutter's
# reserved ids, hive_ce's generated registrar gone stale, a monorepo of two
# apps and a shared package, and the SARIF and GitHub outputs.
# usage: test_typeids_apps.sh path/to/boxguard
set -u
BG=${1:?usage: test_typeids_apps.sh path/to/boxguard}
HERE=$(cd "$(dirname "$0")" && pwd)
BG=$(cd "$(dirname "$BG")" && pwd)/$(basename "$BG") # the test cds below
source "$HERE/lib.sh"

count() { grep -c "$1" "$T/out"; }

# ---- typeIds as constants --------------------------------------------------
A=$T/notes
mkdir -p "$A/lib/core/storage" "$A/lib/models" "$A/lib/adapters"
cat >"$A/pubspec.yaml" <<'YAML'
name: notes
description: "An offline notes app."
environment:
  sdk: ">=3.0.0 <4.0.0"
dependencies:
  flutter:
    sdk: flutter
  hive: ^2.2.3   # the original package
  hive_flutter: ^1.1.0
dev_dependencies:
  hive_generator: ^2.0.1
  build_runner: ^2.4.0
YAML
cat >"$A/lib/core/storage/hive_type_ids.dart" <<'DART'
/// Every Hive typeId of the app, in one place. Never reuse one.
abstract final class HiveTypeIds {
  HiveTypeIds._();

  // Notes (0-9)
  static const int note = 0;
  static const int tag = 1, folder = 2;
  static const colorPref = 3; // the type is inferred

  // Settings (10-19)
  static const int settings = kSettingsTypeId;
}

const int kSettingsTypeId = 10;
DART
cat >"$A/lib/models/note.dart" <<'DART'
import 'package:hive/hive.dart';
import '../core/storage/hive_type_ids.dart';
import '../core/storage/hive_type_ids.dart' as ids;

part 'note.g.dart';

@HiveType(typeId: HiveTypeIds.note)
class Note extends HiveObject {
  @HiveField(0)
  late String title;
}

@HiveType(typeId: ids.HiveTypeIds.tag)
class Tag {}

@HiveType(typeId: HiveTypeIds.folder, adapterName: 'FolderAdapter')
enum Folder { inbox, archive }

@HiveType(typeId: kSettingsTypeId)
class Settings {}
DART
cat >"$A/lib/models/note.g.dart" <<'DART'
// GENERATED CODE - DO NOT MODIFY BY HAND
part of 'note.dart';

class NoteAdapter extends TypeAdapter<Note> {
  @override
  final int typeId = 0;
  @override
  Note read(BinaryReader reader) => Note();
  @override
  void write(BinaryWriter writer, Note obj) {}
}

class TagAdapter extends TypeAdapter<Tag> {
  @override
  final int typeId = 1;
  @override
  Tag read(BinaryReader reader) => Tag();
  @override
  void write(BinaryWriter writer, Tag obj) {}
}
DART
cat >"$A/lib/adapters/color_pref_adapter.dart" <<'DART'
import 'package:hive/hive.dart';
import '../core/storage/hive_type_ids.dart';

class ColorPref {}

/// Written by hand: the typeId comes from the same table.
class ColorPrefAdapter extends TypeAdapter<ColorPref> {
  @override
  final int typeId = HiveTypeIds.colorPref;

  @override
  ColorPref read(BinaryReader reader) => ColorPref();

  @override
  void write(BinaryWriter writer, ColorPref obj) {}
}

class SettingsAdapterV2 extends TypeAdapter<Settings> {
  @override
  int get typeId => HiveTypeIds.settings;
  @override
  Settings read(BinaryReader reader) => Settings();
  @override
  void write(BinaryWriter writer, Settings obj) {}
}
DART
cat >"$A/lib/main.dart" <<'DART'
import 'package:hive_flutter/hive_flutter.dart';

Future<void> main() async {
  await Hive.initFlutter();
  Hive
    ..registerAdapter(NoteAdapter())
    ..registerAdapter(TagAdapter())
    ..registerAdapter(FolderAdapter())
    ..registerAdapter(SettingsAdapter())
    ..registerAdapter(SettingsAdapterV2())
    ..registerAdapter(ColorPrefAdapter());
}
DART
expect 0 "typeIds as constants: clean" -- "$BG" typeids check "$A"
check "every declaration counted" -- has "typeids: 8 declarations, 6 registrations, 0 findings"
expect 0 "the lock holds the resolved values" -- "$BG" typeids check --update-lock --lock "$T/notes.lock" "$A"
check "Tag locked at 1" -- grep -q '"typeId": 1, "name": "Tag"' "$T/notes.lock"
check "Settings locked at 10 (an alias of a top-level const)" -- grep -q '"typeId": 10, "name": "Settings"' "$T/notes.lock"
check "ColorPref locked at 3 (a hand-written adapter)" -- grep -q '"typeId": 3, "name": "ColorPref"' "$T/notes.lock"

# Two constants that collide: reported as a collision of their values.
cp -r "$A" "$T/clash"
sed -i 's/static const colorPref = 3;/static const colorPref = 1;/' "$T/clash/lib/core/storage/hive_type_ids.dart"
expect 1 "two constants of one value" -- "$BG" typeids check "$T/clash"
check "named as a collision of typeId 1" -- has "typeId 1 (hive) has two names: 'Tag' here and 'ColorPref' at $T/clash/lib/adapters/color_pref_adapter.dart:9"
check "once" -- has "1 finding"
# A constant whose value changed under a generated adapter: stale.
cp -r "$A" "$T/stale"
sed -i 's/static const int note = 0;/static const int note = 5;/' "$T/stale/lib/core/storage/hive_type_ids.dart"
expect 1 "a constant changed, the generated adapter not rebuilt" -- "$BG" typeids check "$T/stale"
check "stale generated adapter" -- has "generated adapter NoteAdapter has typeId 0 but the @HiveType of 'Note'"
check "at 5" -- has "says 5: regenerate it"
# The lock catches a constant's value that moved.
expect 1 "a constant moved against the lock" -- "$BG" typeids check --lock "$T/notes.lock" "$T/stale"
check "moved" -- has "'Note' was typeId 0 in the lock file; it now has 5"

# A constant that cannot be resolved: one finding, no cascade.
cp -r "$A" "$T/unres"
cat >>"$T/unres/lib/models/note.dart" <<'DART'

@HiveType(typeId: SyncTypeIds.outbox)
class Outbox {}

@HiveType(typeId: SyncTypeIds.outbox)
class OutboxV2 {}
DART
sed -i 's/    ..registerAdapter(ColorPrefAdapter());/    ..registerAdapter(ColorPrefAdapter())\n    ..registerAdapter(OutboxAdapter())\n    ..registerAdapter(OutboxV2Adapter());/' "$T/unres/lib/main.dart"
expect 1 "an unresolved constant" -- "$BG" typeids check "$T/unres"
check "reported once" -- test "$(count 'SyncTypeIds.outbox')" -eq 1
check "says what to do" -- has "typeId SyncTypeIds.outbox of 'Outbox' names no integer constant that was scanned: add the file or package that defines it to the scan [unresolved]"
check "no undeclared finding for its registrations" -- bash -c "! grep -q undeclared '$T/out'"
check "one finding in all" -- has "1 finding"
cat >"$T/unres/lib/sync_ids.dart" <<'DART'
class SyncTypeIds { static const int outbox = 20; }
DART
expect 1 "resolved once the file is there: now the two share it" -- "$BG" typeids check "$T/unres"
check "a collision at 20" -- has "typeId 20 (hive) has two names: 'OutboxV2' here and 'Outbox'"
# Two definitions of one name with different values: ambiguous.
cat >"$T/unres/lib/more_ids.dart" <<'DART'
class SyncTypeIds { static const int outbox = 21; }
DART
expect 1 "a constant defined twice" -- "$BG" typeids check "$T/unres"
check "both values named" -- has "has two values: 21 ($T/unres/lib/more_ids.dart) and 20 ($T/unres/lib/sync_ids.dart)"

# ---- the range follows the package ---------------------------------------
R=$T/ce
mkdir -p "$R/lib"
cat >"$R/pubspec.yaml" <<'YAML'
name: ce_app
dependencies:
  flutter:
    sdk: flutter
  hive_ce: ^2.11.0
YAML
cat >"$R/pubspec.lock" <<'YAML'
# Generated by pub
# See https://dart.dev/tools/pub/glossary#lockfile
packages:
  hive_ce:
    dependency: "direct main"
    description:
      name: hive_ce
      sha256: "0000"
      url: "https://pub.dev"
    source: hosted
    version: "2.11.3"
  meta:
    dependency: transitive
    description:
      name: meta
      url: "https://pub.dev"
    source: hosted
    version: "1.15.0"
sdks:
  dart: ">=3.4.0 <4.0.0"
YAML
cat >"$R/lib/models.dart" <<'DART'
@HiveType(typeId: 300)
class Wide {}
@HiveType(typeId: 200)
class Paint {}
void main() { Hive.registerAdapter(WideAdapter()); Hive.registerAdapter(PaintAdapter()); }
DART
expect 0 "hive_ce 2.11.3: 300 and 200 are in range" -- "$BG" typeids check "$R"
sed -i 's/typeId: 300/typeId: 65439/' "$R/lib/models.dart"
expect 0 "65439, the last of hive_ce's" -- "$BG" typeids check "$R"
sed -i 's/typeId: 65439/typeId: 65440/' "$R/lib/models.dart"
expect 1 "65440 is past it" -- "$BG" typeids check "$R"
check "hive_ce's range named with its version" -- has "typeId 65440 of 'Wide' is outside hive_ce 2.11.3's 0..65439"
sed -i 's/typeId: 65440/typeId: 300/' "$R/lib/models.dart"
sed -i 's/version: "2.11.3"/version: "2.10.0"/' "$R/pubspec.lock"
expect 0 "hive_ce 2.10.0, the first with the wide range" -- "$BG" typeids check "$R"
sed -i 's/version: "2.10.0"/version: "2.9.0"/' "$R/pubspec.lock"
expect 1 "hive_ce 2.9.0 still caps at 223" -- "$BG" typeids check "$R"
check "says which version raised it" -- has "typeId 300 of 'Wide' is outside hive_ce 2.9.0's 0..223 (2.10.0 raised it to 65439)"
rm "$R/pubspec.lock"
expect 0 "no lock: the constraint ^2.11.0 admits no version below 2.10" -- "$BG" typeids check "$R"
sed -i 's/hive_ce: ^2.11.0/hive_ce: any/' "$R/pubspec.yaml"
expect 1 "no version to be read: the strict range" -- "$BG" typeids check "$R"
check "says why" -- has "outside 0..223 (hive_ce's version is not in pubspec.lock; from 2.10.0 it is 0..65439)"
sed -i 's/hive_ce: any/hive_ce: ^2.11.0\n  hive_ce_flutter: ^2.1.0/' "$R/pubspec.yaml"
expect 1 "hive_ce_flutter reserves 200" -- "$BG" typeids check "$R"
check "its adapter named" -- has "typeId 200 of 'Paint' is hive_ce_flutter's ColorAdapter, registered by Hive.initFlutter(): pick another"
sed -i 's/typeId: 200/typeId: 201/' "$R/lib/models.dart"
expect 1 "and 201" -- "$BG" typeids check "$R"
check "TimeOfDayAdapter" -- has "hive_ce_flutter's TimeOfDayAdapter"
sed -i 's/typeId: 201/typeId: 202/' "$R/lib/models.dart"
expect 0 "202 is free" -- "$BG" typeids check "$R"
# The original hive: 0..223.
sed -i 's/  hive_ce: ^2.11.0/  hive: ^2.2.3/; /hive_ce_flutter/d' "$R/pubspec.yaml"
expect 1 "hive: 300 is out" -- "$BG" typeids check "$R"
check "Hive's range" -- has "typeId 300 of 'Wide' is outside Hive's 0..223"

# ---- hive_ce's generated registrar ----------------------------------------
G=$T/reg
mkdir -p "$G/lib/hive"
cat >"$G/pubspec.yaml" <<'YAML'
name: reg_app
dependencies:
  hive_ce: ^2.11.0
dev_dependencies:
  hive_ce_generator: ^1.8.0
YAML
cat >"$G/lib/hive/hive_adapters.dart" <<'DART'
import 'package:hive_ce/hive.dart';
part 'hive_adapters.g.dart';

@GenerateAdapters([AdapterSpec<Person>(), AdapterSpec<Pet>(), AdapterSpec<Toy>()])
class HiveAdapters {}
DART
cat >"$G/lib/hive/hive_adapters.g.yaml" <<'YAML'
# Generated by Hive CE
nextTypeId: 3
types:
  Person:
    typeId: 0
    nextIndex: 1
  Pet:
    typeId: 1
    nextIndex: 1
  Toy:
    typeId: 2
    nextIndex: 1
YAML
cat >"$G/lib/hive/hive_registrar.g.dart" <<'DART'
// Generated by Hive CE
// Do not modify
// Check into version control

import 'package:hive_ce/hive.dart';
import 'package:reg_app/hive/hive_adapters.dart';

extension HiveRegistrar on HiveInterface {
  void registerAdapters() {
    registerAdapter(PersonAdapter());
    registerAdapter(PetAdapter());
    registerAdapter(ToyAdapter());
  }
}

extension IsolatedHiveRegistrar on IsolatedHiveInterface {
  void registerAdapters() {
    registerAdapter(PersonAdapter());
    registerAdapter(PetAdapter());
    registerAdapter(ToyAdapter());
  }
}
DART
cat >"$G/lib/main.dart" <<'DART'
import 'package:hive_ce/hive.dart';
import 'hive/hive_registrar.g.dart';
void main() { Hive..init('.')..registerAdapters(); }
DART
expect 0 "a registrar that matches the schema" -- "$BG" typeids check "$G"
# Toy renamed to Ball in the schema, the registrar not regenerated.
sed -i 's/^  Toy:/  Ball:/' "$G/lib/hive/hive_adapters.g.yaml"
expect 1 "a stale registrar" -- "$BG" typeids check "$G"
check "the type it misses" -- has "hive schema 'Ball' (typeId 2) is declared but the generated registrar $G/lib/hive/hive_registrar.g.dart does not register BallAdapter: run build_runner [stale-registrar]"
check "the adapter it still lists" -- has "the generated registrar registers ToyAdapter, which is no longer declared: run build_runner [stale-registrar]"
check "not as plain undeclared" -- bash -c "! grep -q '\[undeclared\]' '$T/out'"
# Without a call to registerAdapters(), the registrar registers nothing
# the app runs: a missing adapter is simply unregistered.
sed -i 's/..registerAdapters()//' "$G/lib/main.dart"
expect 1 "registrar never called" -- "$BG" typeids check "$G"
check "unregistered" -- has "is declared but BallAdapter is never registered [unregistered]"

# ---- a monorepo: two apps and a shared package ------------------------------
M=$T/mono
mkdir -p "$M/apps/notes/lib" "$M/apps/billing/lib" "$M/packages/models/lib"
cat >"$M/pubspec.yaml" <<'YAML'
name: mono_workspace
environment:
  sdk: ^3.6.0
workspace:
  - apps/notes
  - apps/billing
  - packages/models
dev_dependencies:
  melos: ^6.0.0
YAML
cat >"$M/packages/models/pubspec.yaml" <<'YAML'
name: models
resolution: workspace
dependencies:
  hive_ce: ^2.11.0
YAML
cat >"$M/packages/models/lib/ids.dart" <<'DART'
class ModelIds {
  static const int note = 1;
  static const int author = 2;
}
DART
cat >"$M/packages/models/lib/note.dart" <<'DART'
import 'ids.dart';
@HiveType(typeId: ModelIds.note)
class Note {}
@HiveType(typeId: ModelIds.author)
class Author {}
DART
cat >"$M/apps/notes/pubspec.yaml" <<'YAML'
name: notes_app
resolution: workspace
dependencies:
  models:
    path: ../../packages/models
  hive_ce: ^2.11.0
YAML
cat >"$M/apps/notes/lib/main.dart" <<'DART'
import 'package:models/ids.dart';
@HiveType(typeId: 3)
class Draft {}
void main() {
  Hive.registerAdapter(NoteAdapter());
  Hive.registerAdapter(AuthorAdapter());
  Hive.registerAdapter(DraftAdapter());
}
DART
cat >"$M/apps/billing/pubspec.yaml" <<'YAML'
name: billing_app
resolution: workspace
dependencies:
  hive: ^2.2.3
YAML
cat >"$M/apps/billing/lib/main.dart" <<'DART'
@HiveType(typeId: 1)
class Invoice {}
void main() { Hive.registerAdapter(InvoiceAdapter()); }
DART
expect 0 "two apps may use one typeId each" -- "$BG" typeids check "$M"
check "all counted" -- has "typeids: 4 declarations, 4 registrations, 0 findings"
expect 0 "the lock of two apps" -- "$BG" typeids check --update-lock --lock "$T/mono.lock" "$M"
check "each entry names its package" -- grep -q '"typeId": 1, "name": "Invoice", "package": "billing_app"' "$T/mono.lock"
check "the shared package's too" -- grep -q '"typeId": 1, "name": "Note", "package": "models"' "$T/mono.lock"
expect 0 "checked against it: one app's typeId 1 is not the other's reuse" -- "$BG" typeids check --lock "$T/mono.lock" "$M"
# In one app, the shared package's typeIds count.
cat >>"$M/apps/notes/lib/main.dart" <<'DART'
@HiveType(typeId: 2)
class Folder {}
void more() { Hive.registerAdapter(FolderAdapter()); }
DART
expect 1 "an app's typeId against its package's" -- "$BG" typeids check "$M"
check "collision across the path dependency" -- has "typeId 2 (hive) has two names: 'Author' here and 'Folder' at $M/apps/notes/lib/main.dart:9"
check "the other app is not involved" -- bash -c "! grep -q Invoice '$T/out'"
# An adapter of a package the app does not depend on is not declared for it.
sed -i '/class Folder/,$d; /@HiveType(typeId: 2)$/d' "$M/apps/notes/lib/main.dart"
echo 'void x() { Hive.registerAdapter(NoteAdapter()); }' >>"$M/apps/billing/lib/main.dart"
expect 1 "a registration from outside the app" -- "$BG" typeids check "$M"
check "undeclared in billing" -- has "$M/apps/billing/lib/main.dart:4: error: NoteAdapter is registered but no adapter of that name is declared [undeclared]"
check "and only there" -- has "1 finding"
# The same checks through a path dependency without a workspace.
sed -i '/^workspace:/,$d' "$M/pubspec.yaml"
sed -i '/resolution: workspace/d' "$M"/apps/*/pubspec.yaml "$M/packages/models/pubspec.yaml"
expect 1 "path dependencies alone" -- "$BG" typeids check "$M"
check "the same one finding" -- has "1 finding"

# ---- SARIF ----------------------------------------------------------------
cd "$T" || exit 3
expect 1 "sarif" -- "$BG" typeids check --format sarif clash
cp "$T/out" "$T/a.sarif"
check "SARIF 2.1.0 with its required fields" -- python3 "$HERE/sarif_check.py" "$T/a.sarif" 1
check "relative paths" -- grep -q '"uri":[[:space:]]*"clash/lib/models/note.dart"' "$T/a.sarif"
check "the rule id" -- grep -q '"ruleId":[[:space:]]*"typeids/collision"' "$T/a.sarif"
sed -i '1i // a line added above' clash/lib/adapters/color_pref_adapter.dart clash/lib/models/note.dart
expect 1 "sarif after lines moved" -- "$BG" typeids check --format sarif clash
cp "$T/out" "$T/b.sarif"
check "the line moved" -- bash -c "! cmp -s '$T/a.sarif' '$T/b.sarif'"
check "the fingerprints did not" -- test "$(grep boxguardFinding "$T/a.sarif")" = "$(grep boxguardFinding "$T/b.sarif")"
expect 0 "sarif of a clean tree" -- "$BG" typeids check --format sarif notes
check "no results, every rule" -- python3 "$HERE/sarif_check.py" "$T/out" 0

# ---- GitHub: annotations capped, the rest in the step summary -------------
mkdir -p many/lib
for i in $(seq 1 12); do
  printf '@HiveType(typeId: %d)\nclass T%d {}\n' "$i" "$i" >>many/lib/m.dart
done
export GITHUB_STEP_SUMMARY=$T/summary.md
expect 1 "github format, 12 findings" -- "$BG" typeids check --format github many
check "10 annotations" -- test "$(grep -c '^::error ' "$T/out")" -eq 10
check "a notice for the rest" -- has "::notice title=typeids::2 more findings, not annotated (GitHub shows 10 a step)"
check "the rest still printed" -- test "$(grep -c 'error: .*T1[12]' "$T/out")" -eq 2
check "the summary has all 12" -- test "$(grep -c '^| many/lib/m.dart\|^| .*many/lib/m.dart' "$T/summary.md")" -eq 12
unset GITHUB_STEP_SUMMARY

finish "typeids apps"
