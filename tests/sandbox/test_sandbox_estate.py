"""The sandbox's wider estate (issue 15): the data centre's S3 (``s3dc``) beside the AWS-like one, each
refusing a request whose bucket owner condition names another account; a second OCI region (``oci_eu``)
with its own buckets in the same namespace; an AWS bucket outside us-east-1."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import boto3
import oci
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from migrator.errors import SandboxError
from migrator.sandbox import control
from migrator.sandbox.buckets import create_bucket, gcs_client, oci_client, s3_client
from migrator.sandbox.control import (
    AWS_ACCESS_KEY_ID,
    AWS_OWNER,
    AWS_PROFILE_AWS,
    AWS_PROFILE_DC,
    AWS_SECRET_ACCESS_KEY,
    DC_OWNER,
    NAMESPACE,
    SandboxState,
)
from migrator.sandbox.estate import LOCATIONS, create_location_bucket, estate_locations
from migrator.sandbox.gcs.service import PROJECT_NUMBER
from tests.conftest import unique

OWNERS = {"s3": AWS_OWNER, "s3dc": DC_OWNER}


def _access_denied(call: object, **kwargs: object) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)  # type: ignore[operator]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return caught.value


@pytest.mark.parametrize("server", ["s3", "s3dc"])
def test_the_bucket_owner_condition_holds_on_both_s3_servers(sandbox: SandboxState, server: str) -> None:
    owner, other = OWNERS[server], OWNERS["s3dc" if server == "s3" else "s3"]
    bucket = unique("owner")
    create_bucket(sandbox, "s3", bucket, server=server)
    s3 = s3_client(sandbox, server)
    s3.put_object(Bucket=bucket, Key="k", Body=b"right owner", ExpectedBucketOwner=owner)
    assert s3.get_object(Bucket=bucket, Key="k", ExpectedBucketOwner=owner)["Body"].read() == b"right owner"

    err = _access_denied(s3.put_object, Bucket=bucket, Key="k2", Body=b"wrong owner", ExpectedBucketOwner=other)
    assert err.response["Error"]["Code"] == "AccessDenied"
    assert err.response["Error"]["Message"] == "Access Denied"
    assert "k2" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert _access_denied(s3.list_objects_v2, Bucket=bucket, ExpectedBucketOwner=other) \
        .response["Error"]["Code"] == "AccessDenied"
    _access_denied(s3.head_object, Bucket=bucket, Key="k", ExpectedBucketOwner=other)  # HEAD: 403, no body
    copy = _access_denied(s3.copy_object, Bucket=bucket, Key="k3", CopySource={"Bucket": bucket, "Key": "k"},
                          ExpectedSourceBucketOwner=other)
    assert copy.response["Error"]["Code"] == "AccessDenied"


def test_the_data_centre_serves_its_own_credentials_only(sandbox: SandboxState) -> None:
    bucket = unique("dc-creds")
    create_bucket(sandbox, "s3", bucket, server="s3dc")
    s3_client(sandbox, "s3dc").put_object(Bucket=bucket, Key="k", Body=b"dc")
    assert sandbox.s3dc is not None
    foreign = boto3.client("s3", endpoint_url=sandbox.s3dc.url, aws_access_key_id=AWS_ACCESS_KEY_ID,
                           aws_secret_access_key=AWS_SECRET_ACCESS_KEY, region_name="us-east-1",
                           verify=sandbox.ca_file, config=Config(s3={"addressing_style": "path"}))
    err = _access_denied(foreign.get_object, Bucket=bucket, Key="k")
    assert err.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert dict(err.response["Error"]).get("AWSAccessKeyId") == AWS_ACCESS_KEY_ID  # S3 names the key refused
    assert _access_denied(foreign.list_buckets).response["Error"]["Code"] == "InvalidAccessKeyId"
    anonymous = boto3.client("s3", endpoint_url=sandbox.s3dc.url, region_name="us-east-1", verify=sandbox.ca_file,
                             config=Config(signature_version=UNSIGNED))
    assert _access_denied(anonymous.get_object, Bucket=bucket, Key="k").response["Error"]["Code"] == "AccessDenied"
    # Presigned URLs carry the key id in X-Amz-Credential: the dc's own is served, a foreign one refused.
    trust = sandbox.ca_file or True
    own = s3_client(sandbox, "s3dc").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert requests.get(own, verify=trust, timeout=10).content == b"dc"
    other = foreign.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    refused = requests.get(other, verify=trust, timeout=10)
    assert (refused.status_code, "<Code>InvalidAccessKeyId</Code>" in refused.text) == (403, True)
    # The AWS-like server still serves any signer, as moto does.
    s3_client(sandbox, "s3").list_buckets()


def test_the_shared_aws_files_name_each_servers_profile(sandbox: SandboxState) -> None:
    env = sandbox.env()
    credentials, config = Path(env["AWS_SHARED_CREDENTIALS_FILE"]), Path(env["AWS_CONFIG_FILE"])
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600 and stat.S_IMODE(config.stat().st_mode) == 0o600
    assert env["AWS_ACCESS_KEY_ID"] == AWS_ACCESS_KEY_ID  # profile-less clients keep today's behaviour
    assert sandbox.s3dc is not None
    bucket = unique("dc-profile")
    create_bucket(sandbox, "s3", bucket, server="s3dc")
    # A named profile wins over the environment's keys (botocore skips them for an explicit profile).
    dc = boto3.Session(profile_name=AWS_PROFILE_DC).client("s3", endpoint_url=sandbox.s3dc.url,
                                                           verify=sandbox.ca_file)
    assert dc.meta.config.s3 == {"addressing_style": "path"}  # type: ignore[attr-defined]
    assert dc.meta.region_name == "us-east-1"
    dc.put_object(Bucket=bucket, Key="k", Body=b"by profile")
    aws = boto3.Session(profile_name=AWS_PROFILE_AWS).client("s3", endpoint_url=sandbox.s3dc.url,
                                                             verify=sandbox.ca_file)
    assert _access_denied(aws.head_bucket, Bucket=bucket).response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_the_two_s3_servers_hold_separate_buckets(sandbox: SandboxState) -> None:
    bucket = unique("dc-only")
    create_bucket(sandbox, "s3", bucket, server="s3dc")
    s3dc, s3 = s3_client(sandbox, "s3dc"), s3_client(sandbox, "s3")
    s3dc.head_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as caught:
        s3.head_bucket(Bucket=bucket)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_an_aws_bucket_in_another_region_reports_its_location(sandbox: SandboxState) -> None:
    bucket, home = unique("apse1"), unique("use1")
    create_bucket(sandbox, "s3", bucket, region="ap-southeast-1")
    create_bucket(sandbox, "s3", home)
    s3 = s3_client(sandbox)
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "ap-southeast-1"
    assert s3.get_bucket_location(Bucket=home)["LocationConstraint"] is None  # us-east-1 answers no constraint
    for name, region in ((bucket, "ap-southeast-1"), (home, "us-east-1")):
        headers = s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]
        assert headers["x-amz-bucket-region"] == region


def test_a_gcs_bucket_names_its_project_number_and_location(sandbox: SandboxState) -> None:
    regional, default = unique("gcs-use1"), unique("gcs-us")
    create_bucket(sandbox, "gs", regional, region="us-east1")
    create_bucket(sandbox, "gs", default)
    gcs = gcs_client(sandbox)
    got = gcs.get_bucket(regional)
    assert got.project_number == int(PROJECT_NUMBER)
    assert (got.location, got.location_type) == ("US-EAST1", "region")
    assert (gcs.get_bucket(default).location, gcs.get_bucket(default).location_type) == ("US", "multi-region")
    assert {b.project_number for b in gcs.list_buckets()} == {int(PROJECT_NUMBER)}


def test_the_two_oci_regions_share_a_namespace_and_not_their_buckets(sandbox: SandboxState) -> None:
    us, _ = oci_client(sandbox, "oci")
    eu, _ = oci_client(sandbox, "oci_eu")
    assert us.get_namespace().data == eu.get_namespace().data == NAMESPACE
    bucket = unique("eu-only")
    create_bucket(sandbox, "oci", bucket, server="oci_eu")
    assert eu.get_bucket(NAMESPACE, bucket).data.name == bucket
    with pytest.raises(oci.exceptions.ServiceError) as caught:
        us.get_bucket(NAMESPACE, bucket)
    assert caught.value.status == 404
    assert bucket not in [b.name for b in us.list_buckets(NAMESPACE, _compartment(sandbox)).data]


def _compartment(state: SandboxState) -> str:
    return str(oci.config.from_file(state.oci_config, "DEFAULT")["tenancy"])


def test_a_server_of_the_wrong_cloud_is_refused(sandbox: SandboxState) -> None:
    with pytest.raises(ValueError, match="not an S3 server"):
        s3_client(sandbox, "oci_eu")
    with pytest.raises(ValueError, match="an OCI bucket's region is its server's"):
        create_bucket(sandbox, "oci", unique("x"), server="oci_eu", region="eu-frankfurt-1")


def test_a_state_written_before_the_estate_loads_without_it(tmp_path: Path, sandbox: SandboxState) -> None:
    raw = json.loads((Path(sandbox.directory) / control.STATE_FILE).read_text())
    assert {raw["oci_eu"]["name"], raw["s3dc"]["name"]} == {"oci_eu", "s3dc"}
    del raw["oci_eu"], raw["s3dc"]
    (tmp_path / control.STATE_FILE).write_text(json.dumps(raw))
    old = control.load(tmp_path)
    assert (old.oci_eu, old.s3dc) == (None, None)
    assert [ep.name for ep in old.endpoints()] == ["s3", "gcs", "oci"]
    with pytest.raises(SandboxError, match="no s3dc endpoint"):
        s3_client(old, "s3dc")


def test_up_starts_and_down_stops_all_five(tmp_path: Path) -> None:
    state = control.up(tmp_path, tls=False)
    try:
        names = [ep.name for ep in state.endpoints()]
        assert names == ["s3", "gcs", "oci", "oci_eu", "s3dc"]
        assert len({ep.url for ep in state.endpoints()}) == 5
        assert control.running(tmp_path) == state
    finally:
        assert control.down(tmp_path)
    assert not any(control._alive(ep.pid) for ep in state.endpoints())


def test_the_estates_location_tables_describe_each_location_truly(sandbox: SandboxState) -> None:
    names = {loc.name: unique(loc.name) for loc in LOCATIONS}
    for name, bucket in names.items():
        create_location_bucket(sandbox, name, bucket)
    text = estate_locations(sandbox, {name: [bucket, "spare-*"] for name, bucket in names.items()})
    tables = tomllib.loads(text)["locations"]
    assert list(tables) == ["dc", "aws-us", "aws-sg", "gcp", "oci-us", "oci-eu"]
    for name, table in tables.items():
        assert table["buckets"] == [names[name], "spare-*"]
        assert table["endpoint"].startswith("https://127.0.0.1:") and table["ca_bundle"] == sandbox.ca_file
        bucket, owner, region = names[name], table["owner"], table["region"]
        if table["kind"] == "s3":
            # Through the profile the table names, with the owner condition it declares.
            s3 = boto3.Session(profile_name=table["profile"]).client(
                "s3", endpoint_url=table["endpoint"], verify=table["ca_bundle"],
                config=Config(s3={"addressing_style": table.get("addressing_style", "auto")}))
            constraint = s3.get_bucket_location(Bucket=bucket, ExpectedBucketOwner=owner)["LocationConstraint"]
            assert (constraint or "us-east-1") == region
        elif table["kind"] == "gs":
            got = gcs_client(sandbox).get_bucket(bucket)
            assert (str(got.project_number), got.location) == (owner, region.upper())
        else:
            config = oci.config.from_file(table["config_file"], table["profile"])
            client = oci.object_storage.ObjectStorageClient(config, service_endpoint=table["endpoint"])
            client.base_client.session.verify = table["ca_bundle"]
            assert client.get_bucket(owner, bucket).data.name == bucket
    assert tables["dc"]["addressing_style"] == "path" and "addressing_style" not in tables["aws-us"]
    assert "credentials_file" not in tables["gcp"]  # the emulator is anonymous
    # The two OCI locations are different stores: each bucket is only where it was made.
    eu, _ = oci_client(sandbox, "oci_eu")
    with pytest.raises(oci.exceptions.ServiceError):
        eu.get_bucket(NAMESPACE, names["oci-us"])


def test_estate_locations_writes_only_the_locations_asked_for(sandbox: SandboxState) -> None:
    tables = tomllib.loads(estate_locations(sandbox, {"oci-eu": ["eu-*"], "dc": ["users"]}))["locations"]
    assert list(tables) == ["dc", "oci-eu"]
    with pytest.raises(ValueError, match="no sandbox location 'aws-eu'"):
        estate_locations(sandbox, {"aws-eu": ["x"]})
