"""Merkle trees as RFC 6962 (Certificate Transparency, §2.1) defines them: pure functions.

A leaf's hash is SHA-256(0x00 || data), an interior node's SHA-256(0x01 || left || right);
the tree over ``n`` leaves splits at the largest power of two below ``n``. On top of the
tree head (:func:`root`) sit the two proofs a log hands out:

- an **inclusion proof** (the audit path, :func:`inclusion_path`) shows that a leaf is
  the ``index``-th of a tree of ``size`` leaves with a given root
  (:func:`verify_inclusion`);
- a **consistency proof** (:func:`consistency_path`) shows that the tree of ``old_size``
  leaves is a prefix of the tree of ``new_size`` leaves: the log only grew
  (:func:`verify_consistency`).

The verifications are RFC 9162's (§2.1.3.2 and §2.1.4.2), which check RFC 6962 proofs
with hashes only. A :class:`Frontier` keeps the right edge of a growing tree (one hash per
bit of its size), so the root after appending ``k`` leaves costs ``O(k + log n)`` hashes,
not ``O(n)``. Nothing here knows about reports or the desk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "RangeRoot",
    "consistency_path",
    "consistency_path_of",
    "heads_from_consistency",
    "inclusion_path",
    "inclusion_path_of",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256
#: The root of the empty tree: SHA-256 of no bytes.
EMPTY_ROOT: Final = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a tree: the roots of the perfect subtrees that its size's binary
    digits make, largest first. Appending a leaf merges equal subtrees as a binary
    counter carries; :meth:`root` folds the edge from the right (RFC 6962's shape)."""

    __slots__ = ("nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()):
        if len(nodes) != size.bit_count():
            raise ValueError(
                f"a frontier of a tree of {size} leaves has {size.bit_count()} nodes, "
                f"not {len(nodes)}"
            )
        self.size = size
        self.nodes = list(nodes)

    @classmethod
    def of(cls, leaves: Iterable[bytes]) -> Frontier:
        """The frontier of the tree over ``leaves`` (leaf hashes)."""
        frontier = cls()
        frontier.extend(leaves)
        return frontier

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        node = leaf
        size = self.size
        nodes = self.nodes
        while size & 1:
            node = _sha256(b"\x01" + nodes.pop() + node).digest()
            size >>= 1
        nodes.append(node)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append leaf hashes in order."""
        sha = _sha256
        nodes = self.nodes
        size = self.size
        for leaf in leaves:
            node = leaf
            carry = size
            while carry & 1:
                node = sha(b"\x01" + nodes.pop() + node).digest()
                carry >>= 1
            nodes.append(node)
            size += 1
        self.size = size

    def root(self) -> bytes:
        """The tree head of the leaves appended so far."""
        nodes = self.nodes
        if not nodes:
            return EMPTY_ROOT
        node = nodes[-1]
        for left in reversed(nodes[:-1]):
            node = _sha256(b"\x01" + left + node).digest()
        return node

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)

    def to_text(self) -> str:
        """The nodes as hex, joined by commas (empty for the empty tree)."""
        return ",".join(node.hex() for node in self.nodes)

    @classmethod
    def from_text(cls, size: int, text: str) -> Frontier:
        return cls(size, [bytes.fromhex(part) for part in text.split(",")] if text else [])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frontier) and (self.size, self.nodes) == (other.size, other.nodes)

    def __repr__(self) -> str:
        return f"Frontier(size={self.size}, root={self.root().hex()[:16]}…)"


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]): the tree head over ``leaves`` (leaf hashes)."""
    return Frontier.of(leaves).root()


#: ``range_root(lo, hi)``: MTH(D[lo:hi]), the head of the tree over leaves ``lo`` to
#: ``hi - 1`` of a larger tree (the proofs below ask for ranges that do not overlap, so a
#: log too large to hold is read once, a part at a time)
RangeRoot = Callable[[int, int], bytes]


def _of(leaves: Sequence[bytes]) -> RangeRoot:
    return lambda lo, hi: root(leaves[lo:hi])


def inclusion_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1: the audit path of leaf ``index`` in the tree
    over ``leaves`` (leaf hashes), nearest sibling first."""
    return inclusion_path_of(index, len(leaves), _of(leaves))


def inclusion_path_of(index: int, size: int, range_root: RangeRoot) -> list[bytes]:
    """:func:`inclusion_path` of leaf ``index`` in a tree of ``size`` leaves, from the
    heads of ranges of its leaves (:data:`RangeRoot`): every leaf but ``index`` is read
    once."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(range_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_root(lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_path(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2: that the tree of the first ``old_size`` leaves
    is a prefix of the tree over ``leaves``. Empty when ``old_size`` is 0 or all."""
    return consistency_path_of(old_size, len(leaves), _of(leaves))


def consistency_path_of(old_size: int, size: int, range_root: RangeRoot) -> list[bytes]:
    """:func:`consistency_path` from ``old_size`` to a tree of ``size`` leaves, from the
    heads of ranges of its leaves (:data:`RangeRoot`, each leaf read at most once)."""
    n = size
    if not 0 <= old_size <= n:
        raise ValueError(f"a tree of {n} leaves has no prefix of {old_size}")
    if old_size in (0, n):
        return []
    path: list[bytes] = []
    lo, hi, m, whole = 0, n, old_size, True
    while True:
        if m == hi - lo:
            if not whole:
                path.append(range_root(lo, hi))
            break
        k = _split(hi - lo)
        if m <= k:
            path.append(range_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_root(lo, lo + k))
            lo += k
            m -= k
            whole = False
    path.reverse()
    return path


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The tree head that ``path`` leads to from ``leaf`` (a leaf hash) as leaf ``index``
    of a tree of ``size`` leaves (RFC 9162 §2.1.3.2), or ``None`` when the path does not
    fit such a tree."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    node = leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return node if sn == 0 else None


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], expected_root: bytes
) -> bool:
    """Whether ``path`` proves that ``leaf`` (a leaf hash) is leaf ``index`` of the tree of
    ``size`` leaves whose head is ``expected_root`` (RFC 9162 §2.1.3.2)."""
    found = root_from_inclusion(index, size, leaf, path)
    return found is not None and found == expected_root


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    path: Sequence[bytes],
) -> bool:
    """Whether ``path`` proves that the tree of ``old_size`` leaves with head ``old_root``
    is a prefix of the tree of ``new_size`` leaves with head ``new_root`` (RFC 9162
    §2.1.4.2; every tree extends the empty one, and a tree itself)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path and old_root == EMPTY_ROOT
    return heads_from_consistency(old_size, new_size, old_root, path) == (old_root, new_root)


def heads_from_consistency(
    old_size: int, new_size: int, old_root: bytes, path: Sequence[bytes]
) -> tuple[bytes, bytes] | None:
    """The heads of the old and the new tree that ``path`` leads to from ``old_root``,
    for ``0 < old_size < new_size`` (RFC 9162 §2.1.4.2), or ``None`` when the path does
    not fit such trees."""
    if not 0 < old_size < new_size or not path:
        return None
    nodes = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old tree is a subtree
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return (fr, sr) if sn == 0 else None
