"""RFC 9162 Merkle trees: known answers from shared/vectors, and properties over random trees."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.attest import merkle
from migrator.errors import VerificationError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle-rfc9162.json"


@pytest.fixture(scope="module")
def vec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def leaves(vec: dict[str, Any], n: int) -> list[bytes]:
    return [bytes.fromhex(h) for h in vec["leaves_hex"][:n]]


def test_roots_built_at_once_and_streamed_match_the_rfc9162_vectors(vec: dict[str, Any]) -> None:
    assert len(vec["roots"]) == 9
    for size, root_hex in vec["roots"].items():
        n = int(size)
        assert merkle.root(leaves(vec, n)).hex() == root_hex
        builder = merkle.MerkleBuilder()
        for leaf in leaves(vec, n):
            builder.add(leaf)
        assert builder.size == n
        assert builder.root().hex() == root_hex


def test_empty_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT


def test_inclusion_vectors(vec: dict[str, Any]) -> None:
    assert vec["inclusion"]
    for case in vec["inclusion"]:
        n, i = case["tree_size"], case["leaf_index"]
        ls = leaves(vec, n)
        path = merkle.inclusion_proof(ls, i)
        assert [p.hex() for p in path] == case["path"]
        merkle.verify_inclusion(ls[i], i, n, [bytes.fromhex(p) for p in case["path"]],
                                bytes.fromhex(vec["roots"][str(n)]))


def test_consistency_vectors(vec: dict[str, Any]) -> None:
    assert vec["consistency"]
    for case in vec["consistency"]:
        m, n = case["old_size"], case["new_size"]
        ls = leaves(vec, n)
        proof = merkle.consistency_proof(ls, m)
        assert [p.hex() for p in proof] == case["proof"]
        old, new = bytes.fromhex(vec["roots"][str(m)]), bytes.fromhex(vec["roots"][str(n)])
        merkle.verify_consistency(m, n, old, new, [bytes.fromhex(p) for p in case["proof"]])


def test_consistency_rejects_wrong_roots(vec: dict[str, Any]) -> None:
    case = vec["consistency"][2]
    m, n = case["old_size"], case["new_size"]
    proof = [bytes.fromhex(p) for p in case["proof"]]
    old, new = bytes.fromhex(vec["roots"][str(m)]), bytes.fromhex(vec["roots"][str(n)])
    with pytest.raises(VerificationError):
        merkle.verify_consistency(m, n, new, new, proof)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(m, n, old, old, proof)
    with pytest.raises(VerificationError):
        merkle.verify_consistency(m, n, old, new, proof[:-1])
    with pytest.raises(VerificationError):
        merkle.verify_consistency(m, n, old, new, [])


def test_inclusion_rejects_bad_index_and_lengths(vec: dict[str, Any]) -> None:
    ls = leaves(vec, 5)
    r = merkle.root(ls)
    path = merkle.inclusion_proof(ls, 2)
    bad: Callable[[], object]
    for bad in (lambda: merkle.verify_inclusion(ls[2], 5, 5, path, r),
                lambda: merkle.verify_inclusion(ls[2], 2, 5, path[:-1], r),
                lambda: merkle.verify_inclusion(ls[2], 2, 5, [*path, path[0]], r),
                lambda: merkle.verify_inclusion(ls[2], 3, 5, path, r),
                lambda: merkle.verify_inclusion(ls[2], 2, 3, path, r)):
        with pytest.raises(VerificationError):
            bad()


def test_builder_a_million_leaves_streams() -> None:
    builder = merkle.MerkleBuilder()
    for i in range(1_000_000):
        builder.add(i.to_bytes(4, "big"))
    assert builder.size == 1_000_000
    assert len(builder._stack) <= 20  # only the right edge is held, never the leaves
    assert len(builder.root()) == 32


leaf_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@settings(max_examples=60, deadline=None)
@given(leaf_lists, st.data())
def test_every_inclusion_proof_verifies_and_a_changed_leaf_fails(ls: list[bytes],
                                                                 data: st.DataObject) -> None:
    r = merkle.root(ls)
    for i in range(len(ls)):
        merkle.verify_inclusion(ls[i], i, len(ls), merkle.inclusion_proof(ls, i), r)
    i = data.draw(st.integers(0, len(ls) - 1))
    changed = data.draw(st.binary(max_size=8).filter(lambda b: b != ls[i]))
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(changed, i, len(ls), merkle.inclusion_proof(ls, i), r)
    other = [*ls[:i], changed, *ls[i + 1:]]
    assert merkle.root(other) != r


@settings(max_examples=60, deadline=None)
@given(leaf_lists, st.data())
def test_every_consistency_proof_verifies(ls: list[bytes], data: st.DataObject) -> None:
    n = len(ls)
    new_root = merkle.root(ls)
    for m in range(0, n + 1):
        merkle.verify_consistency(m, n, merkle.root(ls[:m]), new_root, merkle.consistency_proof(ls, m))
    m = data.draw(st.integers(1, n))
    i = data.draw(st.integers(0, m - 1))
    changed = [*ls[:i], ls[i] + b"x", *ls[i + 1:]]
    if m < n:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(m, n, merkle.root(changed[:m]), new_root,
                                      merkle.consistency_proof(ls, m))
