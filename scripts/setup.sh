#!/usr/bin/env bash
# Installs the Debian 12 packages recon3d needs to build, run and test.
# Idempotent, and silent when everything is already there. Needs root (or sudo)
# only when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  cmake make g++ pkg-config
  libdcmtk-dev libopenjp2-7-dev libcurl4-openssl-dev libsqlite3-dev libssl-dev
  libmicrohttpd-dev libmeshoptimizer-dev libinih-dev libjansson-dev libsystemd-dev
  zlib1g-dev
  # NIfTI label maps (segimport/nifti.c): nifticlib's NIfTI-1/2 reader
  libnifti2-dev
  # run
  dcmtk
  # fuzz build (scripts/build.sh fuzz): clang and libFuzzer's runtime
  clang libclang-rt-14-dev
  # test and benchmark peers
  dicom3tools orthanc python3 python3-numpy python3-vtk9 python3-pydicom curl sqlite3 util-linux
  procps iproute2
  # the 3D page's browser test and bench/viewer: headless chromium, driven by
  # playwright-core, which the build installs with npm ci (tests/viewer)
  chromium fonts-dejavu-core
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm fetches the 3D page's JavaScript and the browser test's playwright-core
# at build time (npm ci). Any node (18 or later) and npm already on the PATH
# will do; Debian's (node 18) only when there is none.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup: missing packages (${missing[*]}) and not root: run as root" >&2
    exit 1
  fi
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
