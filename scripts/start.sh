#!/usr/bin/env bash
# Quick start: installs what is missing, builds, and runs the node in the
# foreground on its embedded defaults (DICOM port 11112, AE title RECON3D,
# status on http://127.0.0.1:8480/status, data in ./var of the checkout).
# Extra arguments go to recon3d, e.g. scripts/start.sh -c conf/recon3d.conf
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
# /status and the jobs API need a bearer token. Without a [token] section the
# daemon makes an admin one next to its database and logs the file's path
# ("the HTTP API takes the admin token in ..."): on these defaults var/api-token.
echo "start: /status and /api/ need a bearer token; without a [token] section it is in" \
     "the file api-token next to [storage] database (defaults: var/api-token):" \
     "curl -H \"Authorization: Bearer \$(cat var/api-token)\" localhost:8480/status" >&2
exec build/release/src/daemon/recon3d "$@"
