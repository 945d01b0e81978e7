#!/bin/sh
# The plugin's SessionStart hook: runs the binary built in the plugin's folder
# (`cargo build --release --locked`), else a `startup-hygiene` found on PATH. With neither,
# it shows the user (not the model) how to build it and exits 0: a session start is never
# disturbed, and nothing is built behind the user's back.
root=${CLAUDE_PLUGIN_ROOT:-$(CDPATH='' cd -- "$(dirname "$0")/.." && pwd)}
bin=$root/target/release/startup-hygiene
if [ -x "$bin" ]; then
    exec "$bin" "$@"
fi
if command -v startup-hygiene >/dev/null 2>&1; then
    exec startup-hygiene "$@"
fi
# JSON output: systemMessage is shown to the user and kept out of the model's context.
json_root=$(printf '%s' "$root" | sed 's/[\\"]/\\&/g')
printf '{"systemMessage": "startup-hygiene plugin: not built yet. To build it: cargo build --release --locked --manifest-path \\"%s/Cargo.toml\\""}\n' "$json_root"
exit 0
