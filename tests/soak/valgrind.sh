#!/usr/bin/env bash
# valgrind.sh - the daemon under valgrind memcheck serving N mixed good and bad requests
# (tests/soak/soak.py's mix), then SIGTERM. Passes when memcheck reports no errors and no
# definitely-lost bytes. Not in CI: memcheck runs the AVX2 forward pass ~100x slower.
#
# Usage: tests/soak/valgrind.sh [REQUESTS=1000] [BIN=build/xbnserve] [CROP=64]
# CROP: the model is served at CROPxCROP input (--preprocess) instead of 224x224: the same
# code paths (decode, resize, batching, engine, formatting), 12x less arithmetic; 0 = 224.
# Needs valgrind (apt-get install valgrind) and `make all models`. The log is kept in
# build/valgrind.log. OpenBLAS's own thread pool keeps buffers for the life of the process:
# those show as "still reachable" or "possibly lost", never as "definitely lost".
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000}
bin=${2:-build/xbnserve}
crop=${3:-64}
log=build/valgrind.log
command -v valgrind >/dev/null || { echo "valgrind.sh: install valgrind" >&2; exit 2; }
t0=$(date +%s)
# OPENBLAS_NUM_THREADS=1: the engine runs BLAS single-threaded anyway (engine.h); fewer
# pool threads make memcheck faster and the report smaller.
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tests/soak/soak.py --bin "$bin" --requests "$n" \
    --seconds 7200 --clients 2 --startup 600 --crop "$crop" --json build/valgrind-soak.json \
    --wrap "valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
            --errors-for-leak-kinds=definite --track-origins=no --num-callers=30 \
            --log-file=$log" || soak_rc=$?
echo "valgrind.sh: $n requests in $(($(date +%s) - t0)) s; soak exit ${soak_rc:-0}"
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable" $log | tail -6
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' $log | tail -1)
definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' $log | tail -1 | tr -d ,)
if [ "${soak_rc:-0}" -ne 0 ] || [ "${errors:-1}" -ne 0 ] || [ "${definite:-0}" -ne 0 ]; then
    echo "VALGRIND FAIL (see $log)"
    exit 1
fi
echo "VALGRIND PASS: 0 errors, 0 bytes definitely lost"
