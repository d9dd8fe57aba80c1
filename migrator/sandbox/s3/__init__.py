"""The sandbox's S3 endpoint: moto's WSGI app behind a layer that makes it behave as S3 documents.

moto departs from S3 exactly where migrator's promises live. The layer (``S3Layer``, a WSGI middleware, plus a
few patches to moto's models where the state lives) adds:

- ``BadDigest`` (400) for a PutObject/UploadPart (or any request with a body) whose ``Content-MD5`` or
  ``x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}`` does not match the bytes; ``aws-chunked`` bodies are
  decoded to check a header or trailer checksum, then passed on unchanged;
- DeleteObjects honouring each entry's ``ETag`` (``PreconditionFailed`` for that key, evaluated like moto's
  DeleteObject ``If-Match``: against the current version);
- CompleteMultipartUpload ``If-Match`` (moto ignores it): only over the current object with that ETag;
- Object Lock: COMPLIANCE retention can be neither shortened nor weakened, GOVERNANCE only with
  ``x-amz-bypass-governance-retention``; a default retention can be set on a bucket that holds objects;
- replication: PutBucketReplication needs versioning on the source and on local destination buckets; new
  objects matching an enabled rule report ``x-amz-replication-status: PENDING``;
  ``POST /_emulator/replication-status`` seeds a status and ``POST /_emulator/replicate`` copies an object to
  its rules' destination buckets (same version id, ``REPLICA``) and marks the source ``COMPLETED``;
- archived storage classes: GET answers 403 InvalidObjectState until RestoreObject (moto; restores complete at
  once), RestoreObject honours ``versionId`` and needs an integer ``Days``, HEAD reports ``x-amz-restore``;
- checksums read back: HEAD (``ChecksumMode=ENABLED``) and CompleteMultipartUpload answer a composite checksum
  with its ``-N`` and ``ChecksumType``, as GET does;
- delete markers: Object Lock and tagging calls on one answer 405 ``MethodNotAllowed``; deleting one by version
  id reports ``DeleteMarker``; unknown versions and uploads are ``NoSuchVersion``/``NoSuchUpload``;
- malformed requests (:mod:`migrator.sandbox.s3.checks`: XML bodies, integer parameters, copy sources,
  continuation tokens, conditional dates) answer S3's 400s where moto answered 500;
- SSE-C: objects written with a customer key answer GET/HEAD (and copies from them) with 400 without the key
  and 403 with a different key, echo the key's MD5, and get an ETag that is not the MD5 of the bytes;
- the bucket owner condition (``x-amz-expected-bucket-owner``, ``x-amz-source-expected-bucket-owner``):
  another account than the server's ``owner`` is 403 AccessDenied; with ``access_key`` (the data centre's
  server) a request signed with another key id is 403 InvalidAccessKeyId, an unsigned one 403 AccessDenied;
  ``path_only``: the Host never names a bucket;
- the sandbox's fault hook (:mod:`migrator.sandbox.faults`) and request counts per operation (API names such
  as ``GetObject``, ``PutObject``, ``UploadPart``, ``DeleteObjects``, ``ListObjectVersions``).

Unsigned control paths: ``GET /_emulator/stats``, ``POST /_emulator/reset`` (moto's state, counts, faults),
``GET|POST /_emulator/faults``, ``POST /_emulator/replication-status`` (JSON ``{"bucket", "key",
"version_id"?, "status"}``), ``POST /_emulator/replicate`` (JSON ``{"bucket", "key", "version_id"?}``).

Two speed-ups change no behaviour: moto's dispatcher lists its own package on every request (cached here), and
ListObjectVersions deep-copied every version in the bucket on every call.

The modules, as for every emulator (see :mod:`migrator.sandbox.base`), though moto keeps the state: ``model``
(moto's models, patched, and the layer's attributes on them), ``service`` (the rules above), ``checks``
(malformed requests), ``http`` (the WSGI layer and the control paths), ``server`` (``build_app``, the keep-alive
server, ``main``). The S3 endpoint shares the sandbox's one error type and fault errors; its request counts are
the fault hook's, and it has no clock of its own (Object Lock runs on real time).
"""
