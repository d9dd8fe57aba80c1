"""Create buckets on the sandbox's clouds (tests and the demo). Loopback endpoints only.

The clients trust the sandbox's CA explicitly (``state.ca_file``), whatever this process's environment
says: requests lets ``REQUESTS_CA_BUNDLE`` override a session's own ``verify``, so the GCS and OCI sessions
here do not read the environment at all (loopback needs no proxy either).
"""

from __future__ import annotations

from typing import Any

from migrator.endpoints import require_loopback
from migrator.sandbox.control import AWS_ACCESS_KEY_ID, AWS_REGION, AWS_SECRET_ACCESS_KEY, SandboxState


def s3_client(state: SandboxState) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=require_loopback(state.s3.url, "sandbox S3"),
                        aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
                        region_name=AWS_REGION, verify=state.ca_file)


def gcs_client(state: SandboxState) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import storage

    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    _trust(session, state)
    return storage.Client(project="sandbox", credentials=credentials, _http=session,
                          client_options={"api_endpoint": require_loopback(state.gcs.url, "sandbox GCS")})


def _trust(session: Any, state: SandboxState) -> None:
    session.trust_env = False
    if state.ca_file is not None:
        session.verify = state.ca_file


def oci_client(state: SandboxState) -> tuple[Any, dict[str, Any]]:
    import oci

    config = oci.config.from_file(state.oci_config, "DEFAULT")
    client = oci.object_storage.ObjectStorageClient(
        config, service_endpoint=require_loopback(state.oci.url, "sandbox OCI"),
        retry_strategy=oci.retry.NoneRetryStrategy())
    _trust(client.base_client.session, state)
    return client, config


def create_bucket(state: SandboxState, scheme: str, name: str, *, versioned: bool = False,
                  object_lock: bool = False, soft_delete_seconds: int = 0) -> None:
    """Create a bucket. GCS buckets get soft delete off unless ``soft_delete_seconds`` says otherwise
    (real GCS defaults to 7 days; migrator's default policy holds objects of such buckets)."""
    if scheme == "s3":
        s3 = s3_client(state)
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        if versioned or object_lock:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    elif scheme == "gs":
        gcs = gcs_client(state)
        bucket = gcs.bucket(name)
        bucket.versioning_enabled = versioned
        bucket.soft_delete_policy.retention_duration_seconds = soft_delete_seconds
        gcs.create_bucket(bucket)
    elif scheme == "oci":
        import oci

        client, config = oci_client(state)
        details = oci.object_storage.models.CreateBucketDetails(
            name=name, compartment_id=config["tenancy"], versioning="Enabled" if versioned else "Disabled")
        client.create_bucket(state.oci_namespace, details)
    else:
        raise ValueError(f"unknown scheme {scheme}")
