#!/bin/sh
# Builds startup-hygiene, installs it, registers it as a Claude Code SessionStart hook and
# shows its first report. `sh install.sh --help` for the options.
#
# The settings file is edited by the installed binary itself (`startup-hygiene settings`),
# which keeps everything else in the file, backs the original up once and writes atomically.
#
# POSIX sh, for Linux and macOS alike: it runs under dash (Debian's sh), bash 3.2 (macOS's
# sh) and later, and uses only POSIX options of POSIX tools (no arrays, no `local`, no
# pipefail, no GNU-only flags; tests/it/install.rs runs it under bash and dash and looks for
# such things). The hook's arguments are kept in "$@", the only list POSIX sh has; the
# `${1+"$@"}` form expands to nothing when it is empty, also under `set -u` in old shells.
set -eu

usage() {
    cat <<'EOF'
install.sh: builds startup-hygiene, installs it to ${PREFIX:-$HOME/.local}/bin and registers
it as a SessionStart hook in Claude Code's user settings, then runs it once on the current
directory (a dry run: nothing is removed or stopped) so you see what it finds.

Usage: sh install.sh [OPTIONS] [-- HOOK_ARGS...]

Options:
  --project DIR     register in DIR/.claude/settings.json (and run the first report on DIR)
  --settings FILE   register in FILE, e.g. DIR/.claude/settings.local.json
  --format FORMAT   how the hook reports: text (default; plain text for the model's
                    context) or hook-json (Claude Code's JSON: the same text as
                    additionalContext, plus a one-line summary shown to the user)
  --timeout SECS    the hook's timeout in Claude Code (default 5)
  --binary FILE     install this already built binary instead of building one
  --no-register     build and install only; leave the settings alone
  --uninstall       remove startup-hygiene's entry (and only that) from the settings file;
                    the binary stays
  -h, --help        print this help
  -- HOOK_ARGS...   flags the hook runs with, e.g. -- --match '*my-server*'
                    (see: startup-hygiene --help)

Environment:
  PREFIX             install to $PREFIX/bin (default: $HOME/.local)
  CLAUDE_CONFIG_DIR  Claude Code's config folder (default: $HOME/.claude)
  CARGO_TARGET_DIR   where cargo builds (default: target/ next to this script)

A second run changes nothing. The original settings file is saved once, before the first
change, as FILE.startup-hygiene.bak.
EOF
}

say() { printf '%s\n' "$*"; }
die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}
usage_error() {
    printf 'install.sh: %s\nTry: sh install.sh --help\n' "$*" >&2
    exit 2
}

# Only shell builtins until cargo has been looked for: the error for a missing cargo must
# not depend on other tools.
case $0 in
    */*) repo=$(CDPATH='' cd -- "${0%/*}" && pwd) ;;
    *) repo=$(pwd) ;;
esac

project="" settings="" format="" timeout="" binary="" register=1 uninstall=0
# The options are taken off the front of "$@"; what stays are the hook's arguments.
while [ $# -gt 0 ]; do
    opt=$1
    case $opt in
        --*=*)
            shift
            set -- "${opt%%=*}" "${opt#*=}" ${1+"$@"}
            continue
            ;;
        --project | --settings | --format | --timeout | --binary)
            if [ $# -lt 2 ] || [ -z "$2" ]; then usage_error "$opt needs a value"; fi
            case $opt in
                --project) project=$2 ;;
                --settings) settings=$2 ;;
                --format) format=$2 ;;
                --timeout) timeout=$2 ;;
                --binary) binary=$2 ;;
            esac
            shift 2
            ;;
        --no-register) register=0 && shift ;;
        --uninstall) uninstall=1 && shift ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            break
            ;;
        *) usage_error "unknown option '$opt'" ;;
    esac
done

[ -n "$project" ] && [ -n "$settings" ] && usage_error "--project and --settings name two files; give one"
[ "$uninstall" = 1 ] && [ "$register" = 0 ] && usage_error "--uninstall and --no-register contradict each other"
case $format in
    "" | text) ;;
    hook-json) set -- --format hook-json ${1+"$@"} ;;
    *) usage_error "--format '$format' is not text or hook-json" ;;
esac
if [ -n "$project" ]; then
    [ -d "$project" ] || die "--project $project is not a folder"
    project=$(CDPATH='' cd -- "$project" && pwd)
fi

prefix=${PREFIX:-$HOME/.local}
case $prefix in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac
dest=$prefix/bin/startup-hygiene

if [ -n "$settings" ]; then
    settings_file=$settings
elif [ -n "$project" ]; then
    settings_file=$project/.claude/settings.json
else
    settings_file=${CLAUDE_CONFIG_DIR:-$HOME/.claude}/settings.json
fi

# Prints the path of a startup-hygiene binary built from this checkout (or --binary).
built_binary() {
    if [ -n "$binary" ]; then
        if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
            die "--binary $binary is not an executable file"
        fi
        say "$binary"
        return
    fi
    if command -v cargo >/dev/null 2>&1; then
        cargo=cargo
    elif [ -x "$HOME/.cargo/bin/cargo" ]; then
        cargo=$HOME/.cargo/bin/cargo
    else
        die "cargo (Rust's build tool) was not found; it is needed to build startup-hygiene.
Install Rust with rustup (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
then open a new shell (or run: . \"\$HOME/.cargo/env\") and run install.sh again."
    fi
    [ -f "$repo/Cargo.toml" ] || die "$repo has no Cargo.toml: run install.sh from a checkout of startup-hygiene"
    printf 'install.sh: building startup-hygiene (cargo build --release --locked)\n' >&2
    "$cargo" build --release --locked --manifest-path "$repo/Cargo.toml" >&2 ||
        die "the build failed (see cargo's output above)"
    # Run in $(...), a subshell: cargo and out are not seen outside.
    out=${CARGO_TARGET_DIR:-$repo/target}/release/startup-hygiene
    [ -x "$out" ] || die "the build did not produce $out"
    say "$out"
}

if [ "$uninstall" = 1 ]; then
    if [ -z "$binary" ] && [ -x "$dest" ]; then
        tool=$dest
    else
        tool=$(built_binary)
    fi
    "$tool" settings remove --file "$settings_file" || die "$settings_file was left as it was"
    if [ -e "$dest" ]; then
        say "The binary stays at $dest (other settings files may still use it); to remove it: rm '$dest'"
    fi
    exit 0
fi

src=$(built_binary)
mkdir -p "$prefix/bin"
if [ -e "$dest" ] && cmp -s "$src" "$dest"; then
    say "startup-hygiene: $dest is up to date"
else
    # A copy renamed into place: a session starting meanwhile runs the old or the new binary.
    cp "$src" "$dest.tmp.$$"
    chmod 755 "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
    say "startup-hygiene: installed $dest"
fi
"$dest" --version >/dev/null || die "$dest does not run on this machine"

if [ "$register" = 1 ]; then
    "$dest" settings add --file "$settings_file" --program "$dest" ${timeout:+--timeout "$timeout"} \
        -- ${1+"$@"} ||
        die "the hook was not registered; $settings_file was left as it was"
fi

# The first report: what the hook would say at the next session start, without acting on
# it now (no --kill, a dry run, as text whatever the registered format). "$@" becomes the
# hook's arguments without those: each one is taken off the front and, if kept, put back at
# the end (`for` has read the whole list before the first turn).
skip=0
for a do
    shift
    if [ "$skip" = 1 ]; then
        skip=0
        continue
    fi
    case $a in
        --kill | --format=*) ;;
        --format) skip=1 ;;
        *) set -- ${1+"$@"} "$a" ;;
    esac
done
dir=${project:-$(pwd)}
say ""
say "First run on $dir (a dry run: nothing is removed or stopped now):"
report=$("$dest" --project "$dir" ${1+"$@"} --dry-run --format text </dev/null)
if [ -n "$report" ]; then
    say "$report"
else
    say "Nothing to report: no stale per-PID state files here and no orphaned MCP servers."
fi
say ""
if [ "$register" = 1 ]; then
    say "The hook runs at every Claude Code session start; its report goes into the session's context."
else
    say "Not registered (--no-register). Manual use: $dest --project DIR"
fi
