"""The OCI Object Storage emulator (with the Vault subset the auditor uses), which the real ``oci`` SDK talks
to over HTTP.

No OCI emulator exists, and the product must prove what it claims against OCI semantics, so this one is
strict where it matters: every request's HTTP signature is verified against the sandbox public key,
Content-MD5 and ``opc-content-crc32c``/``-sha256``/``-sha384`` are checked on puts and parts, version
ids, delete markers and ``if-match``/``if-none-match`` behave as OCI documents, and commit reports the
multipart MD5 and whole-object CRC32C. Beyond objects it emulates, as OCI documents them:

- the bucket's versioning states: ``Disabled`` (never enabled), ``Enabled``, ``Suspended`` ("upload and
  delete behave as in a bucket with versioning disabled; versions created before the suspension are
  retained");
- retention rules (time-bound in DAYS or YEARS, or indefinite; lockable with ``timeRuleLocked`` at least 14
  days ahead): an object or version younger than a rule's duration cannot be deleted or overwritten, a
  locked rule cannot be deleted, and versioning cannot be enabled while rules exist (nor rules added while
  it is enabled);
- replication policies: the destination bucket becomes read-only (403 ``BucketIsReadonly``) and writes to
  the source propagate to it (``OciService.replicate_put``/``replicate_delete`` say exactly what does);
- the Vault (KMS) crypto and management endpoints for ECDSA signing (:mod:`migrator.sandbox.oci.kms`) on the
  same port;
- the sandbox-wide fault hook (:mod:`migrator.sandbox.faults`): latency, 500/503/429, resets, timeouts,
  truncated and bit-flipped bodies, per operation.

Time is the emulator's own clock (real time plus an offset that tests move forward and that never goes
back, not even on reset), so retention expiry and rule locks are tested without sleeping. Signature dates
are checked against real time. An empty optional header (the OCI Go SDK sends ``opc-checksum-algorithm:``
and ``storage-tier:`` so when unset) is taken as absent, as OCI does.

Known departures from the real service: no minimum part size unless ``min_part_size`` is set (OCI waives
it only for the last part); replication is synchronous unless paused through the control path, and the
destination region is recorded but the destination bucket lives in this same emulator; the HTTP status
and code OCI answers for a retention violation are not in its public documentation, so the emulator uses
409 ``Conflict``; no lifecycle, PARs or SSE-C; list orderings beyond "by name, newest version first" (and
multipart uploads by object, then upload id) are not modelled.

Unsigned paths exist for tests only: ``GET /_emulator/stats``, ``POST /_emulator/reset``,
``POST /_emulator/clock?advance=SECONDS``, ``GET|POST /_emulator/replication?paused=true|false`` and the
fault hook's ``GET|POST /_emulator/faults``. Operation names (stats, fault plans) are OCI's API names:
``PutObject``, ``GetObject``, ``HeadObject``, ``DeleteObject``, ``ListObjects``, ``ListObjectVersions``,
``CreateMultipartUpload``, ``UploadPart``, ``CommitMultipartUpload``, ``AbortMultipartUpload``,
``CreateRetentionRule``, ``CreateReplicationPolicy``, ``Sign``, ``Verify``, ``CreateKey`` and so on.

The modules, as for every emulator (see :mod:`migrator.sandbox.base`): ``model`` (buckets, versions, uploads,
rules, policies), ``service`` (the operations and their rules), ``http`` (parsing, routing, answers),
``server`` (``OciEmulator`` and ``main``); plus ``signature`` (request signatures) and ``kms`` (the Vault).
"""
