"""One error hierarchy. Only cli.py turns these into messages and exit codes."""

from __future__ import annotations


class MigratorError(Exception):
    """Base of every error migrator raises on purpose.

    ``exit_code`` follows the CLI contract: 2 bad input or usage, 3 verification failed,
    1 for operational failures.
    """

    exit_code = 1

    def diagnostics(self) -> str:
        return str(self)


class InputError(MigratorError):
    """Bad input: a manifest row, a URI, a wave file, a flag. Nothing was written."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.field = field

    def diagnostics(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.args[0]}" if prefix else str(self.args[0])


class UnsafeEndpointError(MigratorError):
    """A sandbox-bound client was pointed at something other than loopback."""

    exit_code = 2


class ChecksumError(MigratorError):
    """A checksum is missing, unknown, malformed or incomparable. Never treated as a match."""


class ChecksumMismatch(ChecksumError):
    """Two comparable checksums differ."""


class StoreError(MigratorError):
    """A cloud call failed. ``retryable`` is decided by type and status code, never by text
    (``migrator.stores.errors`` holds the one table). ``request_id`` is the cloud's id of the failed
    request when it sent one, for a support case."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retryable: bool = False, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = retryable
        self.request_id = request_id


class SourceChanged(MigratorError):
    """The source no longer is the version that was listed or verified."""


class NotFound(StoreError):
    """The object, version or bucket does not exist."""


class PreconditionFailed(StoreError):
    """A conditional write or delete found something other than what it named."""


class AccessDenied(StoreError):
    """The cloud refused the call for lack of permission, a lock, a hold or retention."""


class DigestRefused(StoreError):
    """The destination refused a write because the bytes it received do not match the digests sent with them
    (S3 ``BadDigest``, OCI ``UnmatchedContentMD5``, a GCS upload's 400): damaged on the way, nothing stored.
    Not "the source is unreadable"; never retried by the policy (the caller decides whether to send again)."""


class SandboxError(MigratorError):
    """The local sandbox could not be started, found or stopped."""


class StateError(MigratorError):
    """The state folder is locked, belongs to another manifest, or is damaged."""

    exit_code = 2


class VerificationError(MigratorError):
    """An attestation, proof or record failed verification. The message names the failed check."""

    exit_code = 3


class WaveStopped(MigratorError):
    """The operator stopped the run (SIGINT or SIGTERM). Every step that had begun was journaled or undone;
    running the same command again resumes. Exit 128 + the signal's number, as a shell reports it."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(f"stopped by {signal_name}: every step in flight is journaled; "
                         "run the same command again to resume")
        self.signal_name = signal_name
        self.exit_code = exit_code
