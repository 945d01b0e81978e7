#!/usr/bin/env bash
# bench/profiles.sh — measure release-profile settings for the hook, one at a time and combined.
#
# Builds the hook once per variant (CARGO_PROFILE_RELEASE_* environment overrides on top of
# Cargo.toml's own [profile.release]; no file is edited), each in its own target directory
# under target/bench/profiles/, for the same target as bench/run.sh. For each: binary size,
# callgrind instruction count (one run, steady-state fixture) and the hyperfine median at the
# machine's own process count. Prints a markdown table, also saved as
# target/bench/profiles/profiles.md.
#
# usage: bench/profiles.sh [--quick]
set -euo pipefail

RUNS=(--warmup 50 --runs 500)
[[ ${1:-} == --quick ]] && RUNS=(--warmup 5 --runs 50)

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${BENCH_TARGET_DIR:-$REPO/target/bench}/profiles
mkdir -p "$BASE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/startup-hygiene-profiles.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; } >&2
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; } >&2

if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  TARGET=x86_64-unknown-linux-musl; STATIC=()
else
  TARGET=x86_64-unknown-linux-gnu; STATIC=("RUSTFLAGS=-C target-feature=+crt-static")
fi

PROJ=$WORK/project
mkdir -p "$PROJ/.orchestrator-state"
echo 0b5e9f0c-7d3a-4c1e-9a53-bench0000001 >"$PROJ/.orchestrator-state/active-session"

# name | environment overrides (space-separated KEY=VALUE)
VARIANTS=(
  "Cargo.toml as is|"
  "lto = true|CARGO_PROFILE_RELEASE_LTO=true"
  "codegen-units = 1|CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1"
  "panic = abort|CARGO_PROFILE_RELEASE_PANIC=abort"
  "strip = true|CARGO_PROFILE_RELEASE_STRIP=true"
  "opt-level = s|CARGO_PROFILE_RELEASE_OPT_LEVEL=s"
  "lto+cgu1+abort+strip, opt 3|CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=abort CARGO_PROFILE_RELEASE_STRIP=true CARGO_PROFILE_RELEASE_OPT_LEVEL=3"
  "lto+cgu1+abort+strip, opt s|CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=abort CARGO_PROFILE_RELEASE_STRIP=true CARGO_PROFILE_RELEASE_OPT_LEVEL=s"
)

OUT=$BASE/profiles.md
{
  echo "| variant | size (bytes) | Ir (callgrind) | median (ms) at $(ls -d /proc/[0-9]* | wc -l) processes |"
  echo "|---|---:|---:|---:|"
} >"$OUT"
i=0
for v in "${VARIANTS[@]}"; do
  name=${v%%|*}; envs=${v#*|}; i=$((i + 1))
  dir=$BASE/v$i
  echo "== $name ($envs)" >&2
  # shellcheck disable=SC2086 # envs is a list of KEY=VALUE words
  (cd "$REPO" && env $envs CARGO_TARGET_DIR="$dir" "${STATIC[@]}" \
    cargo build --quiet --release --locked --target "$TARGET") >&2
  bin=$dir/$TARGET/release/startup-hygiene
  size=$(stat -c %s "$bin")
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg" "$bin" --project "$PROJ" </dev/null >/dev/null 2>&1 || true
  ir=$(awk '/^totals:/ {print $2; exit}' "$WORK/cg")
  hyperfine -N --style none "${RUNS[@]}" -i --export-json "$WORK/hf.json" "'$bin' --project '$PROJ'" </dev/null >/dev/null 2>&1
  med=$(python3 -c 'import json,statistics,sys; print("%.3f" % (statistics.median(json.load(open(sys.argv[1]))["results"][0]["times"])*1e3))' "$WORK/hf.json")
  echo "| $name | $size | $ir | $med |" >>"$OUT"
done
cat "$OUT"
