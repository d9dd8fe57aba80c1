"""Local S3, GCS and OCI endpoints for demos and tests (loopback only)."""
