#!/usr/bin/env bash
# Provides the Claude Code CLI that the end-to-end tests (tests/it/e2e.rs) run against: the
# pinned npm package, installed once into a cache folder, reused while its version matches.
# Prints the path of the client's native binary on stdout; progress goes to stderr.
#
#   export STARTUP_HYGIENE_CLAUDE="$(.ci/provision-claude.sh)"
set -euo pipefail

version=2.1.197
dir="${XDG_CACHE_HOME:-$HOME/.cache}/startup-hygiene-ci/claude"

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) platform=linux-x64 ;;
    Linux-aarch64 | Linux-arm64) platform=linux-arm64 ;;
    *)
        echo "provision-claude: no Claude Code binary for $(uname -s) $(uname -m)" >&2
        exit 1
        ;;
esac
bin="$dir/node_modules/@anthropic-ai/claude-code-$platform/claude"

installed_version() {
    [ -x "$bin" ] && "$bin" --version 2>/dev/null | cut -d' ' -f1
}

if [ "$(installed_version || true)" != "$version" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "provision-claude: npm is needed to install @anthropic-ai/claude-code@$version" >&2
        exit 1
    fi
    echo "provision-claude: installing @anthropic-ai/claude-code@$version into $dir" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@$version" >&2
    got="$(installed_version || true)"
    if [ "$got" != "$version" ]; then
        echo "provision-claude: $bin reports version '${got:-none}', expected $version" >&2
        exit 1
    fi
fi
echo "$bin"
