#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each, one after another (the machine's cores are shared), seeded from
# Tests/Fixtures, and prints each target's execution count. Usage: Tests/fuzz/run.sh SECONDS [TARGET...]
# Builds into .build-fuzz with ONE -sanitize=fuzzer,address flag (two separate -sanitize flags drop the fuzzer).
# Corpora persist in .build-fuzz/corpus/<target>; crashes land in .build-fuzz/crashes/<target>/ and make the
# script fail: copy each to Tests/Fixtures/bad/<target>--<what>.<ext> (test_hostile.py replays them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
seconds="${1:?usage: Tests/fuzz/run.sh SECONDS [TARGET...]}"
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf-vocab gguf mmproj hf native tekken image tokenize-bpe tokenize-tekken chat chat-json grammar session-state)
scratch=.build-fuzz
swift build -c release --product MistralFuzz --scratch-path "$scratch" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING >&2
exe="$scratch/release/MistralFuzz"
seeds="$scratch/seeds"
rm -rf "$seeds"
python3 Tests/fuzz/seeds.py "$seeds"
export MISTRAL_FUZZ_TEKKEN="$seeds/tekken.json" MISTRAL_FUZZ_TEXT_GGUF="$seeds/text64.gguf"
# The decoders' own allocations come from the machine, not the fuzzer's rss limit: allow what a tiny model needs.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
failed=0
total=0
for t in "${targets[@]}"; do
    mkdir -p "$seeds/$t" "$scratch/corpus/$t" "$scratch/crashes/$t"
    log="$scratch/$t.log"
    rc=0
    MISTRAL_FUZZ_TARGET="$t" "$exe" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 \
        -malloc_limit_mb=4096 -timeout=30 -max_len=3000000 -artifact_prefix="$scratch/crashes/$t/" \
        "$scratch/corpus/$t" "$seeds/$t" >"$log" 2>&1 || rc=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    runs="${runs:-0}"
    total=$((total + runs))
    crashes="$(find "$scratch/crashes/$t" -type f | wc -l)"
    printf '%-16s %10s executions  %s crash files  (rc %s, log %s)\n' "$t" "$runs" "$crashes" "$rc" "$log"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then failed=1; fi
done
printf '%-16s %10s executions\n' "total" "$total"
exit "$failed"
