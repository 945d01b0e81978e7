#!/usr/bin/env bash
# bench/run.sh — the startup-hygiene benchmark (issue #6).
#
# Builds the release hook and a static hello-world floor, then measures side by side with
# hyperfine (medians): the floor, the hook (text and --format json), `pgrep -f`, and the
# seed's logic under bun and node — at the machine's own process count and again with
# 1,000 extra sleeping processes of the same user. Also: peak RSS (/usr/bin/time -v),
# binary size, and callgrind's instruction count. Writes BENCHMARKS.md at the repo root.
#
# usage: bench/run.sh [--quick] [--check] [--output FILE]
#   --quick        few runs, a smoke check; writes target/bench/results/BENCHMARKS.md
#                  instead of BENCHMARKS.md unless --output is given
#   --check        exit 3 when a target is not met
#   --output FILE  where to write the report (default: BENCHMARKS.md at the repo root)
# env: BENCH_EXTRA (default 1000) extra processes; BENCH_TARGET_DIR (default target/bench);
#      CARGO_PROFILE_RELEASE_* are honoured by cargo and recorded in the report.
set -euo pipefail

QUICK=0
CHECK=0
OUTPUT=
ARGS=("$@")
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --check) CHECK=1 ;;
    --output) OUTPUT=${2:?--output needs a file}; shift ;;
    --output=*) OUTPUT=${1#--output=} ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/startup-hygiene-bench
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$REPO/target/bench}
RESULTS=$CARGO_TARGET_DIR/results
EXTRA=${BENCH_EXTRA:-1000}
PATTERN='orchestrator/dist/server[.]js' # == orchestrator/dist/server.js, but hyperfine's argv does not match it
if [[ -z $OUTPUT ]]; then
  if ((QUICK)); then OUTPUT=$RESULTS/BENCHMARKS.md; else OUTPUT=$REPO/BENCHMARKS.md; fi
fi

if ((QUICK)); then
  FAST=(--warmup 5 --runs 50); MID=(--warmup 2 --runs 10); SLOW=(--warmup 1 --runs 5); RSS_RUNS=3
else
  FAST=(--warmup 100 --runs 1000); MID=(--warmup 20 --runs 300); SLOW=(--warmup 5 --runs 60); RSS_RUNS=20
fi

log() { printf '\n== %s\n' "$*" >&2; }
warn() { printf 'run.sh: warning: %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
WORK=
SLEEPERS=()
stop_sleepers() {
  if ((${#SLEEPERS[@]})); then
    kill -TERM "${SLEEPERS[@]}" 2>/dev/null || true
    wait "${SLEEPERS[@]}" 2>/dev/null || true
    SLEEPERS=()
  fi
}
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_sleepers
  [[ -n $WORK && -d $WORK ]] && rm -rf -- "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
WORK=$(mktemp -d "${TMPDIR:-/tmp}/startup-hygiene-bench.XXXXXX")

# ---------------------------------------------------------------- tools
APT_UPDATED=0
apt_install() { # apt_install PACKAGE...
  [[ $(id -u) == 0 ]] || die "missing $*; install it (apt-get install -y $*) or run as root"
  command -v apt-get >/dev/null || die "missing $* and no apt-get to install it"
  if ((!APT_UPDATED)); then apt-get update -qq >&2; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
log "tools"
command -v hyperfine >/dev/null || apt_install hyperfine
[[ -x /usr/bin/time ]] || apt_install time
command -v pgrep >/dev/null || apt_install procps
command -v valgrind >/dev/null || (apt_install valgrind) || warn "valgrind unavailable: no instruction count"
command -v python3 >/dev/null || die "python3 is required"
command -v cargo >/dev/null || die "cargo is required"
command -v rustc >/dev/null || die "rustc is required"

NODE_BIN=/usr/bin/node
[[ -x $NODE_BIN ]] || NODE_BIN=$(command -v node || true)
[[ -n $NODE_BIN ]] || warn "node not found: node peer not measured"

find_bun() {
  local c
  for c in "$CACHE/node_modules/@oven/bun-linux-x64/bin/bun" \
           "$CACHE/node_modules/bun/bin/bun.exe" \
           "$CACHE/node_modules/.bin/bun"; do
    if [[ -x $c ]] && "$c" --version >/dev/null 2>&1; then printf '%s\n' "$c"; return 0; fi
  done
  return 1
}
BUN_BIN=$(find_bun || true)
if [[ -z $BUN_BIN ]]; then
  if command -v npm >/dev/null; then
    mkdir -p "$CACHE"
    npm install --prefix "$CACHE" --no-audit --no-fund --loglevel=error bun >&2 || warn "npm install bun failed"
    BUN_BIN=$(find_bun || true)
  fi
  [[ -n $BUN_BIN ]] || warn "bun not runnable (npm package bun under $CACHE): bun peer not measured"
fi

# ---------------------------------------------------------------- build
# Same target and linking for the hook and the floor: musl if rustup has it, else static glibc.
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  TARGET=x86_64-unknown-linux-musl
  STATIC_FLAGS=()
  BUILD_ENV=
else
  TARGET=x86_64-unknown-linux-gnu
  STATIC_FLAGS=(-C target-feature=+crt-static)
  BUILD_ENV="RUSTFLAGS='-C target-feature=+crt-static' "
fi
log "build ($TARGET, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
BUILD_CMD="${BUILD_ENV}cargo build --release --locked --target $TARGET"
if ((${#STATIC_FLAGS[@]})); then
  (cd "$REPO" && RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }${STATIC_FLAGS[*]}" cargo build --release --locked --target "$TARGET")
else
  (cd "$REPO" && cargo build --release --locked --target "$TARGET")
fi
HOOK=$CARGO_TARGET_DIR/$TARGET/release/startup-hygiene
[[ -x $HOOK ]] || die "no binary at $HOOK after the build"
file_out=$(file -b "$HOOK" 2>/dev/null || true)
[[ -z $file_out || $file_out == *static* ]] || warn "hook binary is not static: $file_out"

FLOOR=$WORK/floor
FLOOR_CMD="rustc --edition 2021 -C opt-level=3 -C strip=symbols ${STATIC_FLAGS[*]:+${STATIC_FLAGS[*]} }--target $TARGET bench/floor/hello.rs"
rustc --edition 2021 -C opt-level=3 -C strip=symbols "${STATIC_FLAGS[@]}" --target "$TARGET" \
  -o "$FLOOR" "$REPO/bench/floor/hello.rs"

# ---------------------------------------------------------------- fixture
# Steady state: .orchestrator-state/ holds the legacy active-session file and nothing stale.
PROJ=$WORK/project
mkdir -p "$PROJ/.orchestrator-state"
printf '%s\n' 0b5e9f0c-7d3a-4c1e-9a53-bench0000001 >"$PROJ/.orchestrator-state/active-session"
fixture_state() { (cd "$PROJ/.orchestrator-state" && ls -A) | tr '\n' ' '; }
FIXTURE_BEFORE=$(fixture_state)

log "sanity runs"
set +e
"$FLOOR" </dev/null >/dev/null 2>&1 || die "the floor binary does not run"
HOOK_OUT=$("$HOOK" --project "$PROJ" </dev/null 2>&1); HOOK_RC=$?
HOOK_JSON_OUT=$("$HOOK" --project "$PROJ" --format json </dev/null 2>&1); HOOK_JSON_RC=$?
set -e
printf 'hook exit %s, output: %.300s\n' "$HOOK_RC" "$HOOK_OUT" >&2
printf 'hook --format json exit %s, output: %.300s\n' "$HOOK_JSON_RC" "$HOOK_JSON_OUT" >&2
HOOK_IGN=(); ((HOOK_RC == 0 && HOOK_JSON_RC == 0)) || { warn "the hook exits non-zero in the steady state; measuring anyway (-i)"; HOOK_IGN=(-i); }
if [[ -n $BUN_BIN ]] && ! "$BUN_BIN" "$REPO/bench/peers/seed.js" "$PROJ" </dev/null >/dev/null; then
  warn "bun peer failed: not measured"; BUN_BIN=
fi
if [[ -n $NODE_BIN ]] && ! "$NODE_BIN" "$REPO/bench/peers/seed.js" "$PROJ" </dev/null >/dev/null; then
  warn "node peer failed: not measured"; NODE_BIN=
fi
[[ $(fixture_state) == "$FIXTURE_BEFORE" ]] || die "the fixture changed in the sanity runs: $FIXTURE_BEFORE -> $(fixture_state)"

# ---------------------------------------------------------------- measurement
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # quote one word for hyperfine -N's shell-words split
count_procs() { local p=(/proc/[0-9]*); echo "${#p[@]}"; }

hf() { # hf PHASE GROUP HYPERFINE_OPTS... -- NAME CMD [NAME CMD]...
  local phase=$1 group=$2; shift 2
  local opts=() cmds=()
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  while (($#)); do cmds+=(-n "$1" "$2"); shift 2; done
  ((${#cmds[@]})) || return 0
  hyperfine -N --style basic "${opts[@]}" --export-json "$RESULTS/$phase-$group.json" "${cmds[@]}" </dev/null >&2
}

measure_phase() { # measure_phase PHASE
  local phase=$1 i v max=0
  local proj_q; proj_q=$(sq "$PROJ")
  log "phase $phase: $(count_procs) processes"
  hf "$phase" fast "${FAST[@]}" "${HOOK_IGN[@]}" -- \
    floor "$(sq "$FLOOR")" \
    hook "$(sq "$HOOK") --project $proj_q" \
    hook-json "$(sq "$HOOK") --project $proj_q --format json"
  local mid=(pgrep "$(sq "$(command -v pgrep)") -f $(sq "$PATTERN")")
  [[ -n $BUN_BIN ]] && mid+=(bun "$(sq "$BUN_BIN") $(sq "$REPO/bench/peers/seed.js") $proj_q")
  hf "$phase" mid "${MID[@]}" -i -- "${mid[@]}" # pgrep exits 1 when nothing matches
  if [[ -n $NODE_BIN ]]; then
    hf "$phase" slow "${SLOW[@]}" -- node "$(sq "$NODE_BIN") $(sq "$REPO/bench/peers/seed.js") $proj_q"
  fi
  for ((i = 0; i < RSS_RUNS; i++)); do
    /usr/bin/time -v -o "$WORK/time.txt" "$HOOK" --project "$PROJ" </dev/null >/dev/null 2>&1 || true
    v=$(awk -F': *' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    if [[ $v =~ ^[0-9]+$ ]] && ((v > max)); then max=$v; fi
  done
  ((max > 0)) && echo "$max" >"$RESULTS/rss-$phase.txt"
  if command -v valgrind >/dev/null; then
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$phase" \
      "$HOOK" --project "$PROJ" </dev/null >/dev/null 2>"$WORK/callgrind.$phase.log" || true
    awk '/^totals:/ {print $2; found=1; exit} END {if (!found) exit 1}' "$WORK/callgrind.$phase" >"$RESULTS/ir-$phase.txt" 2>/dev/null ||
      awk '/^summary:/ {print $2; exit}' "$WORK/callgrind.$phase" >"$RESULTS/ir-$phase.txt" 2>/dev/null ||
      { warn "callgrind failed: $(tail -3 "$WORK/callgrind.$phase.log")"; rm -f "$RESULTS/ir-$phase.txt"; }
  fi
  [[ $(fixture_state) == "$FIXTURE_BEFORE" ]] || die "the fixture changed during phase $phase"
}

PROCS_BASE=$(count_procs)
measure_phase base

log "starting $EXTRA sleeping processes"
for ((i = 0; i < EXTRA; i++)); do
  # shellcheck disable=SC2217 # detach from the terminal and from our output pipes
  sleep 3600 </dev/null >/dev/null 2>&1 &
  SLEEPERS+=("$!")
done
sleep 1
PROCS_EXTRA=$(count_procs)
((PROCS_EXTRA - PROCS_BASE >= EXTRA * 9 / 10)) || warn "expected ~$EXTRA more processes, counted $((PROCS_EXTRA - PROCS_BASE))"
measure_phase extra
stop_sleepers

# ---------------------------------------------------------------- report
profile_desc() {
  python3 - "$REPO/Cargo.toml" <<'PY'
import os, sys, tomllib
with open(sys.argv[1], "rb") as f:
    prof = dict(tomllib.load(f).get("profile", {}).get("release", {}))
for k, v in os.environ.items():
    if k.startswith("CARGO_PROFILE_RELEASE_"):
        prof[k[len("CARGO_PROFILE_RELEASE_"):].lower().replace("_", "-") + " (env)"] = v
print(", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in prof.items()) or "cargo defaults (no [profile.release])")
PY
}
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo none)
if [[ -n $(git -C "$REPO" --no-optional-locks status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
  commit="$commit (with uncommitted changes to src/ or Cargo.*)"
fi
{
  echo "DATE=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "COMMAND=bench/run.sh${ARGS[*]:+ ${ARGS[*]}}"
  echo "COMMIT=$commit"
  echo "QUICK=$QUICK"
  echo "EXTRA=$EXTRA"
  echo "NPROC=$(nproc)"
  echo "KERNEL=$(uname -r)"
  echo "CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "PROCS_BASE=$PROCS_BASE"
  echo "PROCS_EXTRA=$PROCS_EXTRA"
  echo "BUILD_CMD=$BUILD_CMD"
  echo "FLOOR_CMD=$FLOOR_CMD"
  echo "PROFILE=$(profile_desc)"
  echo "RUSTC=$(rustc --version)"
  echo "HYPERFINE=$(hyperfine --version | awk '{print $2}')"
  echo "BUN=$([[ -n $BUN_BIN ]] && "$BUN_BIN" --version || echo n/a)"
  echo "NODE=$([[ -n $NODE_BIN ]] && "$NODE_BIN" --version || echo n/a)"
  echo "PGREP=$(pgrep -V 2>/dev/null | head -1)"
  echo "VALGRIND=$(valgrind --version 2>/dev/null || echo 'valgrind n/a')"
  echo "RUNS_DESC=fast commands ${FAST[*]}, pgrep and bun ${MID[*]}, node ${SLOW[*]}"
  echo "HOOK_SIZE=$(stat -c %s "$HOOK")"
  echo "HOOK_BIN_REL=${HOOK#"$REPO"/}"
  echo "FLOOR_SIZE=$(stat -c %s "$FLOOR")"
  echo "RSS_RUNS=$RSS_RUNS"
} >"$RESULTS/facts.env"

log "report"
set +e
python3 "$REPO/bench/report.py" "$RESULTS" "$OUTPUT"
rc=$?
set -e
((rc == 0 || rc == 3)) || die "report.py failed ($rc)"
echo "report written to $OUTPUT" >&2
if ((CHECK && rc == 3)); then exit 3; fi
exit 0
