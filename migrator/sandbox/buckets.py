"""Create buckets on the sandbox's clouds (tests and the demo). Loopback endpoints only.

``server`` names one of the state's endpoints of that cloud: ``"s3"`` (the AWS-like S3, the default) or
``"s3dc"`` (the data centre's), ``"oci"`` (us-ashburn-1, the default) or ``"oci_eu"`` (eu-frankfurt-1).

The clients trust the sandbox's CA explicitly (``state.ca_file``), whatever this process's environment
says: requests lets ``REQUESTS_CA_BUNDLE`` override a session's own ``verify``, so the GCS and OCI sessions
here do not read the environment at all (loopback needs no proxy either).
"""

from __future__ import annotations

from typing import Any

from migrator.endpoints import require_loopback
from migrator.errors import SandboxError
from migrator.sandbox.control import (
    AWS_ACCESS_KEY_ID,
    AWS_REGION,
    AWS_SECRET_ACCESS_KEY,
    DC_ACCESS_KEY_ID,
    DC_SECRET_ACCESS_KEY,
    Endpoint,
    SandboxState,
)

S3_SERVERS = ("s3", "s3dc")
OCI_SERVERS = ("oci", "oci_eu")


def endpoint(state: SandboxState, server: str) -> Endpoint:
    """The state's endpoint called ``server`` (a field of :class:`SandboxState`), refused when not running."""
    if server not in S3_SERVERS + OCI_SERVERS + ("gcs",):
        raise ValueError(f"unknown sandbox server {server!r}")
    found: Endpoint | None = getattr(state, server)
    if found is None:
        raise SandboxError(f"the sandbox in {state.directory} has no {server} endpoint (restart it: "
                           "`migrator sandbox down`, then `up`)")
    require_loopback(found.url, f"sandbox {server}")
    return found


def s3_client(state: SandboxState, server: str = "s3", *, region: str = AWS_REGION) -> Any:
    import boto3
    from botocore.config import Config

    if server not in S3_SERVERS:
        raise ValueError(f"not an S3 server: {server!r}")
    # Each server's own credentials (s3dc refuses the AWS-like one's); the data centre is path-style only.
    key, secret = (DC_ACCESS_KEY_ID, DC_SECRET_ACCESS_KEY) if server == "s3dc" else \
        (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
    style = Config(s3={"addressing_style": "path"}) if server == "s3dc" else None
    return boto3.client("s3", endpoint_url=endpoint(state, server).url, aws_access_key_id=key,
                        aws_secret_access_key=secret, region_name=region, verify=state.ca_file, config=style)


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


def oci_client(state: SandboxState, server: str = "oci") -> tuple[Any, dict[str, Any]]:
    import oci

    if server not in OCI_SERVERS:
        raise ValueError(f"not an OCI server: {server!r}")
    config = oci.config.from_file(state.oci_config, "DEFAULT")
    client = oci.object_storage.ObjectStorageClient(
        config, service_endpoint=endpoint(state, server).url, retry_strategy=oci.retry.NoneRetryStrategy())
    _trust(client.base_client.session, state)
    return client, config


def create_bucket(state: SandboxState, scheme: str, name: str, *, versioned: bool = False,
                  object_lock: bool = False, soft_delete_seconds: int = 0, server: str | None = None,
                  region: str | None = None) -> None:
    """Create a bucket, on the scheme's default server unless ``server`` names another (``s3dc``,
    ``oci_eu``). ``region`` is an S3 bucket's LocationConstraint or a GCS bucket's location (``US-EAST1``;
    GCS defaults to ``US``); an OCI bucket's region is its server's. GCS buckets get soft delete off unless
    ``soft_delete_seconds`` says otherwise (real GCS defaults to 7 days; migrator's default policy holds
    objects of such buckets)."""
    if region is not None and scheme == "oci":
        raise ValueError("an OCI bucket's region is its server's: pass server='oci' or 'oci_eu'")
    if scheme == "s3":
        s3 = s3_client(state, server or "s3")
        where = {} if region in (None, AWS_REGION) else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock, **where)
        if versioned or object_lock:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    elif scheme == "gs":
        if server not in (None, "gcs"):
            raise ValueError(f"not a GCS server: {server!r}")
        gcs = gcs_client(state)
        bucket = gcs.bucket(name)
        bucket.versioning_enabled = versioned
        bucket.soft_delete_policy.retention_duration_seconds = soft_delete_seconds
        gcs.create_bucket(bucket, location=region)
    elif scheme == "oci":
        import oci

        client, config = oci_client(state, server or "oci")
        details = oci.object_storage.models.CreateBucketDetails(
            name=name, compartment_id=config["tenancy"], versioning="Enabled" if versioned else "Disabled")
        client.create_bucket(state.oci_namespace, details)
    else:
        raise ValueError(f"unknown scheme {scheme}")
