"""The Google Cloud Storage JSON API emulator, in memory, that the real ``google-cloud-storage`` client
talks to.

fake-gcs-server departs from documented GCS exactly where migrator's promises live (pinned deletes,
noncurrent generations, soft delete, batch, checksum validation), so this one follows the JSON API
reference on those points:

- generations are strictly increasing microsecond stamps; ``metageneration`` counts metadata changes;
- ``ifGenerationMatch``/``ifGenerationNotMatch``/``ifMetagenerationMatch``/``ifMetagenerationNotMatch``
  answer 412 ``conditionNotMet`` on inserts, reads, patches, deletes, composes and restores;
- a delete naming ``generation`` removes exactly that generation (live or noncurrent) and nothing else;
  without it, a versioned bucket keeps the live object as noncurrent (``timeDeleted``);
- soft delete (bucket ``softDeletePolicy``, 7 days unless set; 0 turns it off): deleted and replaced
  generations become soft-deleted with ``softDeleteTime``/``hardDeleteTime``, listed only with
  ``softDeleted=true``, unreadable, and restorable with ``objects.restore``;
- temporary and event-based holds (403 ``objectUnderActiveHold``) and the bucket retention policy
  (403 ``retentionPolicyNotMet``) block deletes and replacements;
- ``crc32c``/``md5Hash`` declared in upload metadata or an ``X-Goog-Hash`` header are checked against the
  bytes (400 on mismatch); composite objects carry ``componentCount`` and ``crc32c`` but no ``md5Hash``;
- multipart uploads are split byte-exactly per RFC 2046 (:mod:`migrator.sandbox.gcs.multipart`: parts
  without headers, as Go clients send the media part, preambles, quoted boundaries); resumable chunks sent
  with ``X-GUploader-No-308: yes`` get 200 with ``X-HTTP-Status-Code-Override: 308`` instead of 308;
- media is served exactly as stored (gzip stays gzip when the client accepts it);
- JSON batch (``POST /batch/storage/v1``, multipart/mixed, at most 100 calls);
- the sandbox-wide fault hook (:mod:`migrator.sandbox.faults`): latency, 500/503/429 (``backendError``,
  ``rateLimitExceeded``), resets, timeouts, truncated and bit-flipped media on download, and bit flips in
  uploaded media before the declared ``crc32c``/``md5Hash`` are checked, per operation (the op names of
  ``GET /_emulator/stats``).

Known departures (what is not emulated): see ``docs/sandbox.md``.
Unauthenticated paths exist for tests only: ``GET /_emulator/stats`` and ``POST /_emulator/reset``, plus
``POST /_emulator/clock?advance=SECONDS`` to move the emulator's clock forward without sleeping (it never
goes back; reset keeps it), and the fault hook's ``GET|POST /_emulator/faults``.

The modules, as for every emulator (see :mod:`migrator.sandbox.base`): ``model`` (buckets, generations,
upload sessions, preconditions), ``service`` (the operations and their rules), ``http`` (the router, batch,
rendering and the request handler), ``server`` (``GcsEmulator`` and ``main``).
"""
