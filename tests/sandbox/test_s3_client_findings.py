"""What clients nobody here wrote found in the S3 endpoint (issue 14), and the malformed requests a sweep
found after them: each answered as S3 documents, where moto answered a 500 or something S3 does not.

Driven through boto3 over the same endpoint process as ``test_s3_fidelity`` (reset before every test). A
malformed request is boto3's own request with its body, URL or headers rewritten just before signing, so that
the endpoint sees exactly what a careless client would send.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import botocore.exceptions
import pytest

from tests.sandbox.test_s3_fidelity import FUTURE, checksum, code, s3, s3_url, status, url, versioned_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import ChecksumAlgorithmType

__all__ = ["s3", "s3_url", "url"]  # the fixtures, shared with test_s3_fidelity

PART = 5 * 1024 * 1024
GARBAGE = b"<<< not xml"


def failure(call: Callable[[], object]) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call()
    return err.value


@contextlib.contextmanager
def rewritten(client: S3Client, *, body: bytes | None = None, url_edit: Callable[[str], str] | None = None,
              headers: dict[str, str] | None = None) -> Iterator[None]:
    """boto3's requests with the body, URL or headers replaced before signing (the body's checksums go)."""

    def edit(request: Any, **_: Any) -> None:
        if body is not None:
            request.data = body
            for name in [h for h in request.headers if h.lower().startswith("x-amz-checksum-")
                         or h.lower() in ("content-md5", "x-amz-sdk-checksum-algorithm")]:
                del request.headers[name]
        if url_edit is not None:
            request.url = url_edit(request.url)
        for name, value in (headers or {}).items():
            request.headers[name] = value

    client.meta.events.register("before-sign.s3.*", edit)
    try:
        yield
    finally:
        client.meta.events.unregister("before-sign.s3.*", edit)


def multipart(s3: S3Client, bucket: str, key: str, alg: ChecksumAlgorithmType,
              kind: str | None) -> dict[str, Any]:
    """A two-part upload with checksums; CompleteMultipartUpload's answer."""
    create: dict[str, Any] = {"ChecksumAlgorithm": alg} | ({"ChecksumType": kind} if kind else {})
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    parts = []
    for number, data in ((1, b"a" * PART), (2, b"tail")):
        got: dict[str, Any] = dict(s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                                  Body=data, ChecksumAlgorithm=alg))
        parts.append({"PartNumber": number, "ETag": got["ETag"], f"Checksum{alg}": got[f"Checksum{alg}"]})
    done: dict[str, Any] = dict(s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                                             MultipartUpload={"Parts": parts}))  # type: ignore[typeddict-item]
    return done


def field(err: botocore.exceptions.ClientError, name: str) -> str:
    return str(dict(err.response["Error"]).get(name))


def checksums(answer: Any) -> dict[str, str]:
    return {k: v for k, v in dict(answer).items() if k.startswith("Checksum")}


# ------------------------------------------------------------------------ 1. composite checksums on HEAD

@pytest.mark.parametrize(("alg", "kind"), [("CRC32C", None), ("CRC32", "COMPOSITE"), ("SHA256", None),
                                           ("SHA1", "COMPOSITE")])
def test_head_answers_a_composite_checksum_as_get_does(s3: S3Client, alg: ChecksumAlgorithmType,
                                                       kind: str | None) -> None:
    s3.create_bucket(Bucket="composite")
    multipart(s3, "composite", "k", alg, kind)
    head = checksums(s3.head_object(Bucket="composite", Key="k", ChecksumMode="ENABLED"))
    get = checksums(s3.get_object(Bucket="composite", Key="k", ChecksumMode="ENABLED"))
    assert head == get
    assert head["ChecksumType"] == "COMPOSITE" and head[f"Checksum{alg}"].endswith("-2")


def test_complete_multipart_upload_answers_the_composite_checksum(s3: S3Client) -> None:
    s3.create_bucket(Bucket="composite")
    done = checksums(multipart(s3, "composite", "k", "CRC32C", None))
    assert done == checksums(s3.get_object(Bucket="composite", Key="k", ChecksumMode="ENABLED"))
    assert done["ChecksumCRC32C"].endswith("-2") and done["ChecksumType"] == "COMPOSITE"


def test_full_object_checksums_stay_without_a_part_count(s3: S3Client) -> None:
    s3.create_bucket(Bucket="composite")
    multipart(s3, "composite", "k", "CRC64NVME", "FULL_OBJECT")
    head = checksums(s3.head_object(Bucket="composite", Key="k", ChecksumMode="ENABLED"))
    assert head == {"ChecksumCRC64NVME": checksum("CRC64NVME", b"a" * PART + b"tail"), "ChecksumType": "FULL_OBJECT"}


# ------------------------------------------------------------------------ 2. Object Lock calls on delete markers

def _deleted_key(s3: S3Client) -> tuple[str, str]:
    """A locked bucket whose key ``k`` has a delete marker as its latest version: (the old version, the marker)."""
    versioned_bucket(s3, "locked", lock=True)
    old = s3.put_object(Bucket="locked", Key="k", Body=b"x")["VersionId"]
    marker = s3.delete_object(Bucket="locked", Key="k")["VersionId"]
    return old, marker


def _lock_calls(s3: S3Client, **where: Any) -> dict[str, Callable[[], object]]:
    retention: Any = {"Mode": "GOVERNANCE", "RetainUntilDate": FUTURE}
    return {
        "PutObjectLegalHold": lambda: s3.put_object_legal_hold(Bucket="locked", LegalHold={"Status": "ON"}, **where),
        "GetObjectLegalHold": lambda: s3.get_object_legal_hold(Bucket="locked", **where),
        "PutObjectRetention": lambda: s3.put_object_retention(Bucket="locked", Retention=retention, **where),
        "GetObjectRetention": lambda: s3.get_object_retention(Bucket="locked", **where),
        "GetObjectTagging": lambda: s3.get_object_tagging(Bucket="locked", **where),
    }


def test_object_lock_calls_on_a_delete_marker_are_method_not_allowed(s3: S3Client) -> None:
    old, marker = _deleted_key(s3)
    for where in ({"Key": "k"}, {"Key": "k", "VersionId": marker}):
        for name, call in _lock_calls(s3, **where).items():
            err = failure(call)
            assert (status(err), code(err)) == (405, "MethodNotAllowed"), (name, where)
            assert field(err, "ResourceType") == "DeleteMarker"
            assert err.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    s3.put_object_legal_hold(Bucket="locked", Key="k", VersionId=old, LegalHold={"Status": "ON"})  # a real version
    assert s3.get_object_legal_hold(Bucket="locked", Key="k", VersionId=old)["LegalHold"]["Status"] == "ON"
    s3.put_object_legal_hold(Bucket="locked", Key="k", VersionId=old, LegalHold={"Status": "OFF"})


def test_object_lock_calls_on_missing_versions_and_keys_are_404(s3: S3Client) -> None:
    _deleted_key(s3)
    for where, expected in (({"Key": "k", "VersionId": "no-such-version"}, "NoSuchVersion"),
                            ({"Key": "absent"}, "NoSuchKey")):
        for name, call in _lock_calls(s3, **where).items():
            err = failure(call)
            assert (status(err), code(err)) == (404, expected), (name, where)


# ------------------------------------------------------------------------ 3. DeleteObjects on delete markers

def test_delete_objects_reports_the_delete_markers_it_makes_and_removes(s3: S3Client) -> None:
    versioned_bucket(s3, "markers")
    version = s3.put_object(Bucket="markers", Key="a", Body=b"x")["VersionId"]
    made = s3.delete_objects(Bucket="markers", Delete={"Objects": [{"Key": "a"}]})["Deleted"][0]
    assert made["DeleteMarker"] is True and made["DeleteMarkerVersionId"]
    marker = made["DeleteMarkerVersionId"]
    removed = s3.delete_objects(Bucket="markers", Delete={"Objects": [{"Key": "a", "VersionId": marker}]})
    assert removed["Deleted"] == [{"Key": "a", "VersionId": marker, "DeleteMarker": True,
                                   "DeleteMarkerVersionId": marker}]
    plain = s3.delete_objects(Bucket="markers", Delete={"Objects": [{"Key": "a", "VersionId": version}]})
    assert plain["Deleted"] == [{"Key": "a", "VersionId": version}]  # an object version: no marker fields


def test_delete_object_of_a_delete_marker_says_so(s3: S3Client) -> None:
    versioned_bucket(s3, "markers")
    s3.put_object(Bucket="markers", Key="a", Body=b"x")
    marker = s3.delete_object(Bucket="markers", Key="a")["VersionId"]
    gone = s3.delete_object(Bucket="markers", Key="a", VersionId=marker)
    assert (gone["DeleteMarker"], gone["VersionId"]) == (True, marker)
    assert s3.get_object(Bucket="markers", Key="a")["Body"].read() == b"x"  # the object is back


# ------------------------------------------------------------------------ 4. conditional completion, no bucket

@pytest.mark.parametrize("condition", [{"IfMatch": '"0123"'}, {"IfNoneMatch": "*"}, {}])
def test_complete_multipart_upload_on_a_missing_bucket_is_no_such_bucket(s3: S3Client, condition: Any) -> None:
    err = failure(lambda: s3.complete_multipart_upload(
        Bucket="absent", Key="k", UploadId="upload", MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"e"'}]},
        **condition))
    assert (status(err), code(err)) == (404, "NoSuchBucket")


def test_parts_and_completions_of_an_unknown_upload_are_no_such_upload(s3: S3Client) -> None:
    s3.create_bucket(Bucket="uploads")
    s3.put_object(Bucket="uploads", Key="src", Body=b"x")
    calls: list[Callable[[], object]] = [
        lambda: s3.upload_part(Bucket="uploads", Key="k", UploadId="nope", PartNumber=1, Body=b"x"),
        lambda: s3.upload_part_copy(Bucket="uploads", Key="k", UploadId="nope", PartNumber=1,
                                    CopySource={"Bucket": "uploads", "Key": "src"}),
        lambda: s3.complete_multipart_upload(Bucket="uploads", Key="k", UploadId="nope", IfMatch='"e"',
                                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"e"'}]}),
    ]
    for call in calls:
        err = failure(call)
        assert (status(err), code(err), field(err, "UploadId")) == (404, "NoSuchUpload", "nope")


def test_completing_an_upload_again_still_answers(s3: S3Client) -> None:
    s3.create_bucket(Bucket="uploads")
    upload = s3.create_multipart_upload(Bucket="uploads", Key="k")["UploadId"]
    etag = s3.upload_part(Bucket="uploads", Key="k", UploadId=upload, PartNumber=1, Body=b"x")["ETag"]
    parts: Any = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    first = s3.complete_multipart_upload(Bucket="uploads", Key="k", UploadId=upload, MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket="uploads", Key="k", UploadId=upload, MultipartUpload=parts)
    assert again["ETag"] == first["ETag"]


# ------------------------------------------------------------------------ 5. RestoreObject with bad Days

@pytest.mark.parametrize("body", [b"<RestoreRequest><Days>abc</Days></RestoreRequest>",
                                  b"<RestoreRequest><Days>0</Days></RestoreRequest>",
                                  b"<RestoreRequest/>", b"", GARBAGE, b"<Other><Days>1</Days></Other>"])
@pytest.mark.parametrize("named_version", [False, True])
def test_restore_with_malformed_days_is_malformed_xml(s3: S3Client, body: bytes, named_version: bool) -> None:
    versioned_bucket(s3, "cold")
    version = s3.put_object(Bucket="cold", Key="k", Body=b"x", StorageClass="GLACIER")["VersionId"]
    where: Any = {"VersionId": version} if named_version else {}
    with rewritten(s3, body=body):
        err = failure(lambda: s3.restore_object(Bucket="cold", Key="k", RestoreRequest={"Days": 1}, **where))
    assert (status(err), code(err)) == (400, "MalformedXML")
    s3.restore_object(Bucket="cold", Key="k", RestoreRequest={"Days": 2}, **where)  # a good one still restores
    assert s3.get_object(Bucket="cold", Key="k")["Body"].read() == b"x"


@pytest.mark.parametrize(("bucket", "expected"), [("cold", "NoSuchKey"), ("absent", "NoSuchBucket")])
def test_restore_of_missing_keys_and_buckets_is_404(s3: S3Client, bucket: str, expected: str) -> None:
    s3.create_bucket(Bucket="cold")
    err = failure(lambda: s3.restore_object(Bucket=bucket, Key="absent", RestoreRequest={"Days": 1}))
    assert (status(err), code(err)) == (404, expected)


# ------------------------------------------------------------------------ sweep: malformed XML bodies

def _xml_calls(s3: S3Client) -> dict[str, Callable[[], object]]:
    s3.create_bucket(Bucket="plain")
    versioned_bucket(s3, "locked", lock=True)
    s3.put_object(Bucket="plain", Key="k", Body=b"x")
    s3.put_object(Bucket="locked", Key="k", Body=b"x")
    upload = s3.create_multipart_upload(Bucket="plain", Key="m")["UploadId"]
    parts: Any = {"Parts": [{"PartNumber": 1, "ETag": '"e"'}]}
    return {
        "DeleteObjects": lambda: s3.delete_objects(Bucket="plain", Delete={"Objects": [{"Key": "k"}]}),
        "CompleteMultipartUpload": lambda: s3.complete_multipart_upload(Bucket="plain", Key="m", UploadId=upload,
                                                                        MultipartUpload=parts),
        "PutObjectLegalHold": lambda: s3.put_object_legal_hold(Bucket="locked", Key="k", LegalHold={"Status": "ON"}),
        "PutObjectRetention": lambda: s3.put_object_retention(
            Bucket="locked", Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": FUTURE}),
        "PutObjectLockConfiguration": lambda: s3.put_object_lock_configuration(
            Bucket="locked", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}),
        "PutBucketVersioning": lambda: s3.put_bucket_versioning(Bucket="plain",
                                                                VersioningConfiguration={"Status": "Enabled"}),
        "PutBucketReplication": lambda: s3.put_bucket_replication(
            Bucket="locked", ReplicationConfiguration={"Role": "r", "Rules": []}),
        "PutObjectTagging": lambda: s3.put_object_tagging(Bucket="plain", Key="k", Tagging={"TagSet": []}),
        "CreateBucket": lambda: s3.create_bucket(Bucket="fresh"),
    }


@pytest.mark.parametrize("operation", ["DeleteObjects", "CompleteMultipartUpload", "PutObjectLegalHold",
                                       "PutObjectRetention", "PutObjectLockConfiguration", "PutBucketVersioning",
                                       "PutBucketReplication", "PutObjectTagging", "CreateBucket"])
def test_a_body_that_is_not_xml_is_malformed_xml(s3: S3Client, operation: str) -> None:
    call = _xml_calls(s3)[operation]
    with rewritten(s3, body=GARBAGE):
        err = failure(call)
    assert (status(err), code(err)) == (400, "MalformedXML")


@pytest.mark.parametrize(("operation", "body", "expected"), [
    ("DeleteObjects", b"<Delete></Delete>", "MalformedXML"),
    ("DeleteObjects", b"<Delete><Object><VersionId>v</VersionId></Object></Delete>", "MalformedXML"),
    ("DeleteObjects", b"<Other><Object><Key>k</Key></Object></Other>", "MalformedXML"),
    ("DeleteObjects", b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>", "MalformedXML"),
    ("CompleteMultipartUpload", b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part>"
                                b"</CompleteMultipartUpload>", "MalformedXML"),
    ("CompleteMultipartUpload", b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
                                b"</CompleteMultipartUpload>", "MalformedXML"),
    ("PutObjectLegalHold", b"<LegalHold><Status>MAYBE</Status></LegalHold>", "MalformedXML"),
    ("PutObjectLegalHold", b"", "MissingRequestBodyError"),
    ("PutObjectRetention", b"<Retention><Mode>SOFT</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate>"
                           b"</Retention>", "MalformedXML"),
    ("PutObjectRetention", b"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>soon</RetainUntilDate>"
                           b"</Retention>", "MalformedXML"),
    ("PutObjectLockConfiguration", b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule>"
                                   b"<DefaultRetention><Mode>GOVERNANCE</Mode><Days>abc</Days></DefaultRetention>"
                                   b"</Rule></ObjectLockConfiguration>", "MalformedXML"),
    ("PutObjectLockConfiguration", b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule>"
                                   b"<DefaultRetention><Mode>GOVERNANCE</Mode><Days>0</Days></DefaultRetention>"
                                   b"</Rule></ObjectLockConfiguration>", "InvalidArgument"),
    ("PutBucketVersioning", b"<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>",
     "MalformedXML"),
])
def test_documents_that_break_the_schema_are_refused(s3: S3Client, operation: str, body: bytes,
                                                     expected: str) -> None:
    call = _xml_calls(s3)[operation]
    with rewritten(s3, body=body):
        err = failure(call)
    assert (status(err), code(err)) == (400, expected)


# ------------------------------------------------------------------------ sweep: parameters and headers

def _replace(old: str, new: str) -> Callable[[str], str]:
    return lambda u: u.replace(old, new)


def test_parameters_that_are_not_integers_are_invalid_argument(s3: S3Client) -> None:
    s3.create_bucket(Bucket="params")
    s3.put_object(Bucket="params", Key="k", Body=b"x")
    upload = s3.create_multipart_upload(Bucket="params", Key="m")["UploadId"]
    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("max-keys=7", "max-keys=abc", lambda: s3.list_objects_v2(Bucket="params", MaxKeys=7)),
        ("max-keys=7", "max-keys=abc", lambda: s3.list_objects(Bucket="params", MaxKeys=7)),
        ("max-keys=7", "max-keys=-1", lambda: s3.list_objects_v2(Bucket="params", MaxKeys=7)),
        ("max-keys=7", "max-keys=abc", lambda: s3.list_object_versions(Bucket="params", MaxKeys=7)),
        ("max-parts=7", "max-parts=abc", lambda: s3.list_parts(Bucket="params", Key="m", UploadId=upload, MaxParts=7)),
        ("part-number-marker=7", "part-number-marker=x",
         lambda: s3.list_parts(Bucket="params", Key="m", UploadId=upload, PartNumberMarker=7)),
        ("partNumber=1", "partNumber=abc",
         lambda: s3.upload_part(Bucket="params", Key="m", UploadId=upload, PartNumber=1, Body=b"x")),
        ("partNumber=1", "partNumber=0", lambda: s3.get_object(Bucket="params", Key="k", PartNumber=1)),
        ("partNumber=1", "partNumber=abc", lambda: s3.head_object(Bucket="params", Key="k", PartNumber=1)),
    ]
    for old, new, call in cases:
        with rewritten(s3, url_edit=_replace(old, new)):
            err = failure(call)
        assert status(err) == 400, new
        assert code(err) in ("InvalidArgument", "400"), new  # HEAD answers carry no body


def test_an_unknown_continuation_token_is_invalid_argument(s3: S3Client) -> None:
    s3.create_bucket(Bucket="listing")
    for key in ("a", "b"):
        s3.put_object(Bucket="listing", Key=key, Body=b"x")
    token = s3.list_objects_v2(Bucket="listing", MaxKeys=1)["NextContinuationToken"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="listing", ContinuationToken=token)["Contents"]] == ["b"]
    err = failure(lambda: s3.list_objects_v2(Bucket="listing", ContinuationToken="not-a-token"))
    assert (status(err), code(err)) == (400, "InvalidArgument")


@pytest.mark.parametrize(("source", "message"), [("just-a-bucket", "Invalid copy source object key"),
                                                 ("/", "Invalid copy source bucket name")])
def test_a_copy_source_without_bucket_and_key_is_invalid_argument(s3: S3Client, source: str, message: str) -> None:
    s3.create_bucket(Bucket="copies")
    s3.put_object(Bucket="copies", Key="k", Body=b"x")
    upload = s3.create_multipart_upload(Bucket="copies", Key="m")["UploadId"]
    calls: list[Callable[[], object]] = [
        lambda: s3.copy_object(Bucket="copies", Key="c", CopySource={"Bucket": "copies", "Key": "k"}),
        lambda: s3.upload_part_copy(Bucket="copies", Key="m", UploadId=upload, PartNumber=1,
                                    CopySource={"Bucket": "copies", "Key": "k"})]
    for call in calls:
        with rewritten(s3, headers={"x-amz-copy-source": source}):
            err = failure(call)
        assert (status(err), code(err), field(err, "Message")) == (400, "InvalidArgument", message)


@pytest.mark.parametrize("bad", ["bytes=abc", "bytes=9-2"])
def test_a_copy_range_that_is_not_first_to_last_is_invalid_argument(s3: S3Client, bad: str) -> None:
    s3.create_bucket(Bucket="copies")
    s3.put_object(Bucket="copies", Key="k", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket="copies", Key="m")["UploadId"]
    err = failure(lambda: s3.upload_part_copy(Bucket="copies", Key="m", UploadId=upload, PartNumber=1,
                                              CopySource={"Bucket": "copies", "Key": "k"}, CopySourceRange=bad))
    assert (status(err), code(err)) == (400, "InvalidArgument")
    good = s3.upload_part_copy(Bucket="copies", Key="m", UploadId=upload, PartNumber=1,
                               CopySource={"Bucket": "copies", "Key": "k"}, CopySourceRange="bytes=2-4")
    assert good["CopyPartResult"]["ETag"]


def test_conditional_dates_that_are_not_dates_are_ignored(s3: S3Client) -> None:
    s3.create_bucket(Bucket="dates")
    s3.put_object(Bucket="dates", Key="k", Body=b"x")
    for header in ("If-Modified-Since", "If-Unmodified-Since"):
        with rewritten(s3, headers={header: "not a date"}):
            assert s3.get_object(Bucket="dates", Key="k")["Body"].read() == b"x"
            assert s3.head_object(Bucket="dates", Key="k")["ContentLength"] == 1
    # a real date in another HTTP-date form still counts (moto reads only one form)
    with rewritten(s3, headers={"If-Modified-Since": "Sunday, 06-Nov-94 08:49:37 GMT"}):
        assert s3.get_object(Bucket="dates", Key="k")["Body"].read() == b"x"
    with rewritten(s3, headers={"If-Unmodified-Since": "Sunday, 06-Nov-94 08:49:37 GMT"}):
        err = failure(lambda: s3.get_object(Bucket="dates", Key="k"))
    assert status(err) == 412

