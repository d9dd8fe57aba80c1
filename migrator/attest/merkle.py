"""RFC 9162 §2.1 Merkle tree hashing (the same hashing as RFC 6962, Certificate Transparency).

leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right), empty root = SHA-256("").
A tree of n > 1 leaves splits at k, the largest power of two smaller than n.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from migrator.errors import VerificationError

EMPTY_ROOT = hashlib.sha256(b"").digest()
ALGORITHM = "rfc9162-sha256"


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def level_hashes(leaf_hashes: bytes) -> list[bytes]:
    """Level 0 (the leaf hashes), level 1 (their pairs' node hashes), ... up to a level of one hash."""
    sha, levels, level = hashlib.sha256, [leaf_hashes], leaf_hashes
    while len(level) >= 64:
        level = b"".join([sha(b"\x01" + level[i:i + 64]).digest() for i in range(0, len(level) // 64 * 64, 64)])
        levels.append(level)
    return levels


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleBuilder:
    """Incremental tree head: add leaves one by one, ask the root at any time.

    Holds only the hashes of the perfect subtrees along the right edge (at most log2(n) of them),
    so a million leaves cost a few MB of nothing and two hashes per leaf.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, subtree hash), sizes strictly decreasing
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def add(self, leaf: bytes) -> None:
        self.add_leaf_hash(leaf_hash(leaf))

    def add_leaf_hash(self, digest: bytes) -> None:
        size, h = 1, digest
        stack = self._stack
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, h = left_size + size, node_hash(left, h)
        stack.append((size, h))
        self._size += 1

    def add_leaf_hashes(self, hashes: bytes) -> None:
        """``add_leaf_hash`` for each of many (concatenated) leaf hashes, a level at a time: an item at an odd
        position pairs with the open subtree on the stack, the rest pair up, an unpaired last one waits."""
        if len(hashes) % 32:
            raise ValueError("leaf hashes must be 32 bytes each")
        stack, sha = self._stack, hashlib.sha256
        level, start, size = hashes, self._size, 1      # start: position of level[0] in units of size
        waiting: list[tuple[int, bytes]] = []
        while level:
            if start & 1:                               # the open subtree on the stack is its left sibling
                left_size, left = stack.pop()
                if left_size != size:
                    raise RuntimeError("merkle builder stack out of order")
                level, start = left + level, start - 1
            pairs = len(level) // 64 * 64
            if pairs != len(level):
                waiting.append((size, level[pairs:]))
            level = b"".join([sha(b"\x01" + level[i:i + 64]).digest() for i in range(0, pairs, 64)])
            start, size = start >> 1, size << 1
        stack.extend(reversed(waiting))                 # larger subtrees below smaller ones
        self._size += len(hashes) // 32

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


def root(leaves: Sequence[bytes]) -> bytes:
    builder = MerkleBuilder()
    for leaf in leaves:
        builder.add(leaf)
    return builder.root()


def _mth(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """Root of the subtree over leaf hashes[lo:hi] (hi > lo)."""
    if hi - lo == 1:
        return hashes[lo]
    k = _split(hi - lo)
    return node_hash(_mth(hashes, lo, lo + k), _mth(hashes, lo + k, hi))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, leaves): sibling hashes from the leaf up to the root."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of {n} leaves")
    hashes = [leaf_hash(leaf) for leaf in leaves]
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_mth(hashes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_mth(hashes, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()  # built top-down; the proof lists the leaf's sibling first
    return path


def verify_inclusion(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2. Raises VerificationError unless ``leaf`` is at ``index`` of the tree ``root``."""
    if not 0 <= index < tree_size:
        raise VerificationError(f"inclusion: leaf index {index} is outside a tree of {tree_size} leaves")
    fn, sn = index, tree_size - 1
    r = leaf_hash(leaf)
    for p in path:
        if sn == 0:
            raise VerificationError("inclusion: proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion: proof is shorter than the tree is deep")
    if r != root:
        raise VerificationError("inclusion: computed root differs from the tree root")


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, leaves): the tree of the first old_size leaves is a prefix."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is outside 0..{n}")
    if old_size in (0, n):
        return []
    hashes = [leaf_hash(leaf) for leaf in leaves]
    proof: list[bytes] = []
    lo, hi, m, whole = 0, n, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_mth(hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_mth(hashes, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append(_mth(hashes, lo, hi))
    proof.reverse()
    return proof


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2. Raises VerificationError unless the old tree is a prefix of the new one."""
    if not 0 <= old_size <= new_size:
        raise VerificationError(f"consistency: old size {old_size} is outside 0..{new_size}")
    if old_size == 0 or old_size == new_size:
        # Every tree extends the empty tree; a tree is consistent with itself. Neither needs a proof.
        if proof:
            raise VerificationError("consistency: proof must be empty")
        expected_old = EMPTY_ROOT if old_size == 0 else new_root
        if old_root != expected_old:
            raise VerificationError("consistency: old root does not match")
        return
    if not proof:
        raise VerificationError("consistency: proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency: proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency: proof is shorter than the tree is deep")
    if fr != old_root:
        raise VerificationError("consistency: old root does not match")
    if sr != new_root:
        raise VerificationError("consistency: new root does not match")


class MerkleTree:
    """Every level of a tree, for inclusion proofs in O(log n) hashes instead of O(n).

    Level k holds the hashes of the aligned perfect subtrees of 2**k leaves (level 0: the leaf hashes),
    each 32 bytes, concatenated: about 64 bytes a leaf in all. Built once from the leaves (n - 1 node
    hashes), a proof then costs at most ~2 log2(n) lookups and hashes.
    """

    def __init__(self, leaf_hashes: bytes) -> None:
        if len(leaf_hashes) % 32:
            raise ValueError("leaf hashes must be 32 bytes each")
        self._levels: list[Any] = level_hashes(bytes(leaf_hashes))   # bytes, or an index's mmap views
        self._size = len(leaf_hashes) // 32

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        return cls(b"".join(leaf_hash(leaf) for leaf in leaves))

    @property
    def size(self) -> int:
        return self._size

    def leaf_hash(self, index: int) -> bytes:
        if not 0 <= index < self._size:
            raise ValueError(f"leaf index {index} is outside a tree of {self._size} leaves")
        return bytes(self._levels[0][index * 32:index * 32 + 32])

    def _subtree(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:     # aligned perfect subtree: stored
            k = n.bit_length() - 1
            return bytes(self._levels[k][(lo >> k) * 32:(lo >> k) * 32 + 32])
        k = _split(n)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def root(self) -> bytes:
        return EMPTY_ROOT if self._size == 0 else self._subtree(0, self._size)

    def inclusion_proof(self, index: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[n]), the same as ``inclusion_proof(leaves, index)``."""
        if not 0 <= index < self._size:
            raise ValueError(f"leaf index {index} is outside a tree of {self._size} leaves")
        path: list[bytes] = []
        lo, hi = 0, self._size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._subtree(lo, lo + k))
                lo += k
        path.reverse()
        return path
