#!/usr/bin/env bash
# Configures and builds one flavour of recon3d under build/<flavour>:
#   release  optimised, for running and benchmarks
#   asan     AddressSanitizer + UndefinedBehaviorSanitizer, for the test suite
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) opts=(-DR3D_SANITIZE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan)    opts=(-DR3D_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  *) echo "build: unknown flavour '$flavour' (release or asan)" >&2; exit 2 ;;
esac
cmake -S . -B "build/$flavour" "${opts[@]}" >/dev/null
cmake --build "build/$flavour" -j "$(nproc)" -- --no-print-directory >/dev/null
