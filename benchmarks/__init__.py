"""Throughput and memory of migrator against the tools operators would otherwise use.

`python -m benchmarks.run` (or `make bench`) starts a fresh sandbox per case, runs migrator, rclone and a
plain boto3 baseline as subprocesses against the same endpoints, and writes benchmarks/results/latest.json.
"""
