"""Location: one bucket as a value. Its text is the URI's prefix, byte for byte as records and attestations
have always written it; it parses back to itself, keys dicts, and names its objects."""

from __future__ import annotations

import pytest

from migrator.errors import InputError
from migrator.uri import Location, ObjectURI, parse_location, parse_uri, split_location

TEXTS = ["s3://demo-photos", "gs://backup_2026.eu", "oci://tenancy-ns/Dest.Bucket_1"]


@pytest.mark.parametrize("text", TEXTS)
def test_a_location_is_its_uris_prefix_and_parses_back(text: str) -> None:
    uri = parse_uri(f"{text}/a/b.bin")
    assert str(uri.location) == text
    assert parse_location(text) == uri.location
    assert uri.location.uri("a/b.bin") == uri
    assert str(uri).startswith(f"{uri.location}/")


def test_the_fields_and_the_oci_namespace() -> None:
    assert parse_location("oci://ns/b") == Location("oci", "b", "ns")
    assert parse_location("s3://bucket") == Location("s3", "bucket")
    assert Location("s3", "bucket").namespace is None
    assert ObjectURI("gs", "b", "k").location == Location("gs", "b")
    assert ObjectURI("oci", "b", "k", "ns").location.namespace == "ns"
    # An OCI URI built without a namespace keeps today's text, and its location says it names none.
    assert str(ObjectURI("oci", "b", "k").location) == "oci:///b"
    assert Location("oci", "b", "") == Location("oci", "b") and Location("oci", "b", "").namespace is None
    assert Location("oci", "b").uri("k") == ObjectURI("oci", "b", "k", "")


def test_locations_key_dicts_and_differ_by_each_field() -> None:
    a, b = parse_uri("oci://ns1/b/x"), parse_uri("oci://ns1/b/y")
    counts: dict[Location, int] = {}
    for u in (a, b, parse_uri("oci://ns2/b/x"), parse_uri("s3://bbb/x"), parse_uri("gs://bbb/x")):
        counts[u.location] = counts.get(u.location, 0) + 1
    assert counts == {Location("oci", "b", "ns1"): 2, Location("oci", "b", "ns2"): 1,
                      Location("s3", "bbb"): 1, Location("gs", "bbb"): 1}
    with pytest.raises(AttributeError):
        a.location.bucket = "other"  # type: ignore[misc]


def test_split_location_returns_what_follows_the_bucket() -> None:
    assert split_location("oci://ns/bucket") == (Location("oci", "bucket", "ns"), "")
    assert split_location("oci://ns/bucket/") == (Location("oci", "bucket", "ns"), "")
    assert split_location("oci://ns/bucket/logs/a") == (Location("oci", "bucket", "ns"), "logs/a")
    assert split_location("s3://bucket/k") == (Location("s3", "bucket"), "k")


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty location"),
    ("bucket", "not a location"),
    ("ftp://bucket", "unknown scheme 'ftp'"),
    ("oci://bucket", "oci location needs oci://namespace/bucket"),
    ("oci://n s/bucket", "oci location needs oci://namespace/bucket"),
    ("s3://Bad_Bucket", "invalid s3 bucket name 'Bad_Bucket'"),
    ("s3://", "invalid s3 bucket name ''"),
    ("s3://bucket/key", "names a bucket, not a key or prefix"),
    ("gs://bucket/", "names a bucket, not a key or prefix"),
])
def test_a_bad_location_is_refused_naming_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_location(text, field="scope")
    assert info.value.field == "scope"
