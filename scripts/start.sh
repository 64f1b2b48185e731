#!/usr/bin/env bash
# Quick start: installs what is missing, builds, and runs the node in the
# foreground on its embedded defaults (DICOM port 11112, AE title RECON3D,
# status on http://127.0.0.1:8480/status, data in ./var of the checkout).
# Extra arguments go to recon3d, e.g. scripts/start.sh -c conf/recon3d.conf
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec build/release/src/daemon/recon3d "$@"
