"""Local S3, GCS and OCI endpoints for demos and tests (loopback only).

``s3/``, ``gcs/`` and ``oci/`` are the endpoints, each split into ``model``, ``service``, ``http`` and
``server`` over :mod:`migrator.sandbox.base`; ``faults`` is their shared fault hook, ``serve`` the loopback
server and process lifecycle, ``control`` starts and stops them as processes (``s3_server``,
``gcs_emulator`` and ``oci_emulator`` are those processes' entry points), ``oci_auth`` makes the OCI SDK's
sandbox credentials, and ``buckets`` and ``seed`` create and fill buckets through the clouds' own SDKs.
"""
