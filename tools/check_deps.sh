#!/usr/bin/env bash
# check_deps.sh - fail when an include crosses the layers' dependency rule (docs/architecture.md).
#
#   cli    -> server, image, engine/engine.h
#   server -> image, engine/engine.h
#   image  -> nothing of ours outside image/
#   engine -> nothing of ours outside engine/
#
# Includes of our own headers are path-qualified from the top ("engine/engine.h"), so a
# bare "x.h" is an error too. Each outside library belongs to one layer: libmicrohttpd to
# server/, libjpeg and libpng to image/, BLAS to engine/kernels/.
# Usage: tools/check_deps.sh [ROOT]   (default: the repository this script is in)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

allowed() { # $1: the including file, $2: the included path -> 0 when the rule allows it
    case "$1" in
    engine/*) [[ $2 == engine/* ]] ;;
    image/*) [[ $2 == image/* ]] ;;
    server/*) [[ $2 == server/* || $2 == image/* || $2 == engine/engine.h ]] ;;
    cli/*) [[ $2 == cli/* || $2 == server/* || $2 == image/* || $2 == engine/engine.h ]] ;;
    *) return 0 ;;
    esac
}
lib_layer() { # $1: a <system> header -> the one folder allowed to include it, or nothing
    case "$1" in
    microhttpd.h) echo server/ ;;
    jpeglib.h | png.h) echo image/ ;;
    cblas.h) echo engine/kernels/ ;;
    esac
}

bad=0
while IFS= read -r f; do
    while IFS=: read -r line inc; do
        if [[ $inc =~ ^#include\ \"([^\"]+)\" ]]; then
            path=${BASH_REMATCH[1]}
            if [[ $path != */* ]]; then
                echo "$f:$line: include \"$path\" is not path-qualified (say \"dir/$path\")"
                bad=1
            elif ! allowed "$f" "$path"; then
                echo "$f:$line: ${f%%/*}/ may not include \"$path\" (docs/architecture.md)"
                bad=1
            fi
        elif [[ $inc =~ ^#include\ \<([^\>]+)\> ]]; then
            only=$(lib_layer "${BASH_REMATCH[1]}")
            if [[ -n $only && $f != "$only"* ]]; then
                echo "$f:$line: <${BASH_REMATCH[1]}> belongs to $only only"
                bad=1
            fi
        fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$f" | sed 's/:[[:space:]]*#[[:space:]]*include[[:space:]]*/:#include /')
done < <(find engine image server cli -name '*.[ch]' | sort)
[ $bad -eq 0 ] && echo "check-deps: every include follows the rule"
exit $bad
