#!/usr/bin/env bash
# Smoke test of the PyInstaller bundle (make bundle): run it from anywhere.
#
#   packaging/smoke_test.sh [BUNDLE_DIR]      (default: dist/apex-director)
#
# 1. apex-director --help and --version run (the frozen CLI starts, version is the engine's);
# 2. apex-director renders the shipped demo song with the draft preset and the procedural
#    backend to an MP4; the file is checked to be a valid MP4 (ftyp box; the render's JSON
#    report, which the engine fills by probing the written file, says H.264 640x360 with
#    frames and AAC audio; the bundle's own `apex-director qa` decodes it and passes it);
# 3. apex-director-gui --smoke-test DEMO opens the main window offscreen, analyses the demo song
#    in a stage process (the frozen executable spawned again as a child) and exits 0.
# Runs from a temporary folder with HOME pointed there, so no user config or cache is used
# and the bundle cannot lean on the source tree for resources/.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
BUNDLE="$(cd "${1:-$ROOT/dist/apex-director}" && pwd)"
CLI="$BUNDLE/apex-director"
GUI="$BUNDLE/apex-director-gui"
DEMO="$BUNDLE/_internal/resources/demo/demo_song.mp3"

fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }
[[ -x "$CLI" ]] || fail "no executable $CLI (run make bundle)"
[[ -x "$GUI" ]] || fail "no executable $GUI (run make bundle)"
[[ -f "$DEMO" ]] || fail "the bundle carries no demo song at $DEMO"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config" XDG_CACHE_HOME="$WORK/home/.cache"
export XDG_DATA_HOME="$WORK/home/.local/share" QT_QPA_PLATFORM=offscreen
unset APEX_DIRECTOR_DATA PYTHONPATH PYTHONHOME
mkdir -p "$HOME"

echo "== apex-director --help"
"$CLI" --help > help.txt || fail "--help exited $?"
grep -q "render" help.txt || fail "--help does not list the render command"

echo "== apex-director --version"
version="$("$CLI" --version)" || fail "--version exited $?"
[[ "$version" =~ ^apex-director\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "--version said: $version"
echo "$version"

echo "== apex-director render (draft, procedural)"
start=$(date +%s)
"$CLI" render "$DEMO" -o "$WORK/demo.mp4" --preset draft --backend procedural \
    --json-report "$WORK/demo.report.json" || fail "render exited $?"
echo "render took $(( $(date +%s) - start )) s"
[[ -s "$WORK/demo.mp4" ]] || fail "render wrote no demo.mp4"
# An MP4 starts with an ftyp box; the report says what was encoded.
[[ "$(head -c 8 "$WORK/demo.mp4" | tail -c 4)" == "ftyp" ]] || fail "demo.mp4 is not an MP4"
python3 - "$WORK/demo.report.json" <<'PY' || fail "the render report does not describe a valid draft MP4"
import json, sys
out = json.load(open(sys.argv[1]))["output"]
checks = {
    "video_codec": out["video_codec"] == "h264",
    "size": (out["width"], out["height"]) == (640, 360),
    "frames": out["frames"] > 24,
    "audio_codec": out["audio_codec"] == "aac",
    "in sync": abs(out["video_duration"] - out["audio_duration"]) < 0.1,
}
print("report:", {k: out[k] for k in ("video_codec", "width", "height", "frames", "audio_codec")})
sys.exit(0 if all(checks.values()) else f"failed: {[k for k, v in checks.items() if not v]}")
PY
"$CLI" qa "$WORK/demo.mp4" > qa.txt || { cat qa.txt; fail "apex-director qa did not pass the demo MP4"; }
tail -n 3 qa.txt

echo "== apex-director-gui --smoke-test (offscreen)"
timeout 180 "$GUI" --smoke-test "$DEMO" > gui.txt 2>&1 || { cat gui.txt; fail "the GUI smoke test exited non-zero"; }
grep -q "main window shown=True" gui.txt || { cat gui.txt; fail "the GUI did not report its window"; }
# the song was analysed in a stage process: the frozen executable started again as a child
grep -q "started a stage process" gui.txt || { cat gui.txt; fail "the GUI started no stage process"; }
grep -q "smoke test: analysed demo_song.mp3" gui.txt || { cat gui.txt; fail "the GUI did not analyse the demo song"; }

echo "SMOKE OK: $BUNDLE"
