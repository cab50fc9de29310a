#!/usr/bin/env bash
# run.sh - run the libFuzzer drivers built by `make fuzz-build` (build-fuzz/fuzz/fuzz_*).
#
# Usage: tests/fuzz/run.sh smoke|long [SECONDS] [DRIVER...]
#   smoke  every driver replays its regression inputs (tests/fuzz/regress/<driver>/) and its
#          seeds once, then fuzzes for SECONDS (default 4): what CI runs (`make fuzz-smoke`).
#   long   the same with SECONDS per driver (default 600), keeping the grown corpus in
#          build-fuzz/corpus/<driver> between runs (`make fuzz FUZZ_SECONDS=...`).
# DRIVER is a short name (image, multipart, v1, v2, config, model, npy); default all.
# A crash, leak, timeout (>10 s for one input) or out-of-memory (>2 GB) stops with exit 1
# and leaves the input in build-fuzz/artifacts/. One line per driver is appended to
# build-fuzz/stats.txt: driver, seconds, executions, exec/s, coverage, corpus size.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build-fuzz
mode=${1:-smoke}
case "$mode" in
smoke) secs=${2:-4} ;;
long) secs=${2:-600} ;;
*) echo "usage: $0 smoke|long [SECONDS] [DRIVER...]" >&2; exit 2 ;;
esac
shift $(($# > 1 ? 2 : $#))
drivers=("$@")
[ ${#drivers[@]} -eq 0 ] && drivers=(image multipart v1 v2 config model npy)

[ -d $B/seeds ] || /usr/bin/python3 tests/fuzz/make_seeds.py $B/seeds
mkdir -p $B/artifacts
for d in "${drivers[@]}"; do
    bin=$B/fuzz/fuzz_$d
    [ -x $bin ] || { echo "run.sh: $bin missing (make fuzz-build)" >&2; exit 1; }
    mkdir -p $B/corpus/$d $B/seeds/$d tests/fuzz/regress/$d
    log=$B/fuzz-$d.log
    opts=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix=$B/artifacts/$d- -print_final_stats=1)
    # 1. Replay: every regression input and seed, once (also catches leaks: LSan at exit).
    if ! $bin "${opts[@]}" -runs=0 tests/fuzz/regress/$d $B/seeds/$d >$log 2>&1; then
        echo "FAIL $d: replay of regress/seeds (see $log)"; tail -40 $log; exit 1
    fi
    # 2. Fuzz. The first directory receives new inputs; smoke runs start from scratch.
    corpus=$B/corpus/$d
    if [ "$mode" = smoke ]; then corpus=$B/smoke-corpus/$d; rm -rf "$corpus"; mkdir -p "$corpus"; fi
    t0=$(date +%s)
    if ! $bin "${opts[@]}" -max_total_time="$secs" "$corpus" tests/fuzz/regress/$d $B/seeds/$d \
        >$log 2>&1; then
        echo "FAIL $d: see $log and $B/artifacts/"; grep -A30 -m1 "ERROR\|==ERROR\|deadly\|SUMMARY" $log || tail -40 $log
        exit 1
    fi
    t1=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' $log)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' $log)
    cov=$(grep -o 'cov: [0-9]*' $log | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' $log | tail -1 | cut -d' ' -f2)
    n=$(ls "$corpus" | wc -l)
    line="$(date -u +%FT%TZ) $mode $d seconds=$((t1 - t0)) execs=$execs exec/s=$rate cov=$cov ft=$ft new_corpus=$n"
    echo "$line"
    echo "$line" >>$B/stats.txt
done
