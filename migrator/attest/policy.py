"""Verification policies: what the auditor demands of an attestation, stated before anything is checked.

A policy is a frozen value, checked when it is made (a bad one is an InputError), as in sigstore-python:

- ``Threshold(keys, n=1)``: at least ``n`` distinct keys of ``keys`` signed. Needs n >= 1 and at least n
  distinct trusted keys. A signature under an untrusted keyid is ignored, never counted; one under a
  trusted keyid that does not verify fails the check.
- ``RequireRecords()``: records.jsonl is the attested subject, its tree is the signed root, it holds rows
  1..N in order, and its totals and reasons are the predicate's.
- ``RequireManifest(name=None)``: the manifest is the attested subject ``name`` (default: the only one that
  is neither records nor subject index), and it has as many data rows as the tree has leaves.
- ``RequireRowCount(rows)``: the attestation covers exactly ``rows`` rows, a count known without the file.
- ``RequireSubjectIndex(key=None)``: subjects.jsonl is the attested subject index; with the records, it
  partitions their subjects; with the custodian's ``key`` (which needs RequireRecords too) each keyed hash
  is recomputed.
- ``AllOf(*policies)``: each holds. An empty AllOf is refused ("an empty list of child policies is
  considered trivially invalid"); so are two RequireManifest, RequireRowCount or RequireSubjectIndex.

``verify_attestation`` takes a policy holding at least one Threshold, and ``Inputs``: the files the
demands read. A demanded input that is missing, or an input nothing demands, is an InputError naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from migrator.attest.keys import PublicKey, keyid, verify_signature
from migrator.errors import InputError, VerificationError

if TYPE_CHECKING:
    from migrator.attest.dsse import Envelope
    from migrator.attest.subjects import SubjectHasher

T = TypeVar("T")


@dataclass(frozen=True, init=False)
class Threshold:
    keys: tuple[PublicKey, ...]
    n: int

    def __init__(self, keys: Iterable[PublicKey], n: int = 1) -> None:
        object.__setattr__(self, "keys", tuple(keys))
        object.__setattr__(self, "n", n)
        distinct = len({keyid(k) for k in self.keys})
        if n < 1:
            raise InputError("threshold must be at least 1", field="threshold")
        if distinct == 0:
            raise InputError("no trusted public keys given: a threshold counts the signatures of the keys named")
        if distinct < n:
            raise InputError(f"threshold {n} needs at least {n} distinct trusted keys, got {distinct}")

    def check(self, env: Envelope) -> tuple[str, ...]:
        """The keyids of the trusted keys whose signatures verify; raises below the threshold."""
        trusted, message, verified = {keyid(k): k for k in self.keys}, env.pae(), []
        for sig in env.signatures:
            signer = trusted.get(sig.keyid)
            if signer is None:
                continue  # an untrusted keyid is ignored, never counted
            if not verify_signature(signer, message, sig.sig):
                raise VerificationError(f"signature: signature with trusted keyid {sig.keyid} does not verify")
            verified.append(sig.keyid)  # keyids are distinct (strict form), so keys are distinct
        if len(verified) < self.n:
            raise VerificationError(f"signature: {len(verified)} valid signature(s) from trusted keys, "
                                    f"threshold is {self.n}")
        return tuple(verified)


@dataclass(frozen=True)
class RequireRecords:
    pass


@dataclass(frozen=True)
class RequireManifest:
    name: str | None = None


@dataclass(frozen=True)
class RequireRowCount:
    rows: int


@dataclass(frozen=True)
class RequireSubjectIndex:
    key: SubjectHasher | None = None


_SINGLE = (RequireManifest, RequireRowCount, RequireSubjectIndex)


@dataclass(frozen=True, init=False)
class AllOf:
    children: tuple[Policy, ...]

    def __init__(self, *children: Policy) -> None:
        if not children:
            raise InputError("an empty AllOf demands nothing: an empty list of policies is trivially invalid")
        if not all(isinstance(c, _POLICIES) for c in children):
            raise TypeError("AllOf takes policies")
        object.__setattr__(self, "children", children)
        for kind in _SINGLE:
            if len(demands(self, kind)) > 1:
                raise InputError(f"a policy holds at most one {kind.__name__}")


Policy = Threshold | RequireRecords | RequireManifest | RequireRowCount | RequireSubjectIndex | AllOf
_POLICIES = (Threshold, RequireRecords, RequireManifest, RequireRowCount, RequireSubjectIndex, AllOf)


def demands(policy: Policy, kind: type[T]) -> tuple[T, ...]:
    """The demands of one kind in ``policy``, AllOf taken apart."""
    if isinstance(policy, AllOf):
        return tuple(d for child in policy.children for d in demands(child, kind))
    return (policy,) if isinstance(policy, kind) else ()


@dataclass(frozen=True)
class Inputs:
    """The files a policy's demands read: bytes, or paths (a large records file is then read in parallel)."""

    records: bytes | Path | None = None
    manifest: bytes | Path | None = None
    subjects: bytes | Path | None = None
