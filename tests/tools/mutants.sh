#!/usr/bin/env bash
# Mutation testing of one decision module with the tests that hold it (not part of
# cargo test; figures in RELIABILITY.md). Extra arguments go to cargo-mutants, e.g.
#   tests/tools/mutants.sh reaper --re put_back     # only mutants in matching functions
#   tests/tools/mutants.sh config --list            # what would be tried
# Results: target/mutants/<module>/mutants.out/{caught,missed,timeout,unviable}.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
module=${1:?"usage: $0 reaper|orphans|process_table|registry|kill|config|sanitize|glob [cargo-mutants args]"}
shift
case $module in
reaper) tests="reaper:: security:: faults:: platforms::" ;;
orphans | kill | registry) tests="orphans:: registry:: kill:: security:: faults:: platforms::" ;;
process_table) tests="process_table:: procfs:: orphans:: reaper:: faults:: platforms::" ;;
config) tests="config:: properties::config security::" ;;
sanitize) tests="sanitize:: unicode:: properties::sanitized properties::report_block security::hostile" ;;
glob) tests="glob:: properties::glob faults::slow_rules" ;;
*) echo "unknown module: $module" >&2; exit 2 ;;
esac
if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install cargo-mutants --locked --version 27.1.0
fi
mkdir -p "target/mutants/$module"
# shellcheck disable=SC2086 # the filters are separate words
exec cargo mutants -j 2 --file "src/$module.rs" -o "target/mutants/$module" "$@" \
    -- --lib --test it -- $tests --skip faults::a_state_folder_of_100_000_files
