#!/usr/bin/env bash
# Configures and builds one flavour of recon3d under build/<flavour>:
#   release  optimised, for running and benchmarks
#   asan     AddressSanitizer + UndefinedBehaviorSanitizer, for the test suite
#   fuzz     clang, libFuzzer harnesses of tests/fuzz with ASan + UBSan (bench/fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) opts=(-DR3D_SANITIZE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan)    opts=(-DR3D_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  fuzz)    opts=(-DR3D_FUZZ=ON -DR3D_WERROR=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
                 -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++) ;;
  *) echo "build: unknown flavour '$flavour' (release, asan or fuzz)" >&2; exit 2 ;;
esac
target=()
[ "$flavour" = fuzz ] && target=(--target fuzz)   # the harnesses and their seeds only
cmake -S . -B "build/$flavour" "${opts[@]}" >/dev/null
cmake --build "build/$flavour" "${target[@]}" -j "$(nproc)" -- --no-print-directory >/dev/null
