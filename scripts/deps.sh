#!/usr/bin/env bash
# deps.sh - install the Debian packages xbnserve needs to build, test and run.
# Usage: scripts/deps.sh [build|test|all|container|bench]   (default: all)
# `test` and `all` include Node.js and npm for the validators in tests/integration/node.
# `container` is only what `make container-test` needs (podman, runc, debootstrap); `bench`
# adds the HTTP load generator to the build set (`make bench`; Node.js for ONNX Runtime is
# the machine's own) and python3-onnx, with which bench/export_onnx.py writes the
# GroupNormalization variant that bench/ort_configs.py tries.
# `prometheus` is for its promtool and its server binary, which the metrics and dashboard tests
# run on their own ports; the system service it installs is stopped and disabled again.
# Installs only what is missing. As root it runs apt-get; otherwise it prints the
# command to run and fails, so a build never half-works for lack of a package.
set -euo pipefail

build_pkgs=(gcc make pkg-config libmicrohttpd-dev libgnutls28-dev libcjson-dev libjpeg62-turbo-dev libpng-dev
    libopenblas-dev python3 python3-torch python3-numpy)
# qemu-user: tests/integration/test_portable.py runs the binary on an emulated CPU without AVX.
test_pkgs=(libcmocka-dev python3-pytest python3-torchvision python3-pil python3-h5py
    python3-yaml curl clang clang-format libclang-rt-14-dev
    python-matplotlib-data lomiri-wallpapers-20.04 libjpeg-turbo-progs
    prometheus python3-matplotlib chromium chromium-driver python3-selenium qemu-user
    dataset-fashion-mnist)
# npm installs the validators of tests/integration/node (Makefile: node-deps). Debian's
# nodejs + npm only where the machine has no npm of its own (a Node.js from elsewhere
# ships npm inside its nodejs package, which Debian's npm would conflict with).
command -v npm >/dev/null 2>&1 || test_pkgs+=(nodejs npm)
container_pkgs=(podman runc debootstrap)
bench_pkgs=(wrk python3-onnx)

want=("${build_pkgs[@]}")
case "${1:-all}" in
build) ;;
test | all) want+=("${test_pkgs[@]}") ;;
container) want=("${container_pkgs[@]}") ;;
bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
*) echo "usage: $0 [build|test|all|container|bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "deps.sh: run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
