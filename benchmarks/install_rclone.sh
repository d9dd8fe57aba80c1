#!/bin/sh
# Install rclone (Debian's package, 1.60), the peer `make bench` measures migrator against, when it is missing.
# Without it the benchmark still runs and reports migrator and the boto3 baseline only.
set -eu
if command -v rclone >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "rclone is not installed and apt-get is not available: install rclone 1.60 or later;" \
         "until then the benchmark skips it" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rclone; }; then
    echo "could not install rclone with apt-get; the benchmark will skip it" >&2
fi
exit 0
