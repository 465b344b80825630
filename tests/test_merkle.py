"""RFC 6962 Merkle trees (:mod:`sipantau_core.merkle`): the Certificate Transparency
reference vectors (the tree heads of the eight reference leaves, inclusion and
consistency proofs from CT's ``merkle_tree_test``), and properties against a naive
recursive recompute of RFC 6962 §2.1, for every leaf and every pair of sizes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipantau_core.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_path,
    consistency_path_of,
    inclusion_path,
    inclusion_path_of,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

# The reference leaves of Certificate Transparency's merkle_tree_test.
DATA = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f")
]  # fmt: skip
LEAVES = [leaf_hash(d) for d in DATA]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
# (old size, new size, consistency path)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 word for word: the naive recursion."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*_subproof(m, leaves[:k], whole), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


def test_the_reference_tree_heads() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    for n in range(len(LEAVES) + 1):
        assert root(LEAVES[:n]).hex() == ROOTS[n], n
        assert Frontier.of(LEAVES[:n]).root().hex() == ROOTS[n], n


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_the_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    got = inclusion_path(index, LEAVES[:size])
    assert [h.hex() for h in got] == path
    assert verify_inclusion(index, size, LEAVES[index], got, bytes.fromhex(ROOTS[size]))
    assert not verify_inclusion(index, size, LEAVES[index], got, bytes.fromhex(ROOTS[size - 1]))
    assert not verify_inclusion(index, size, LEAVES[index - 1], got, bytes.fromhex(ROOTS[size]))
    assert not verify_inclusion(index + 1, size, LEAVES[index], got, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_the_reference_consistency_proofs(old: int, new: int, path: list[str]) -> None:
    got = consistency_path(old, LEAVES[:new])
    assert [h.hex() for h in got] == path
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify_consistency(old, new, old_root, new_root, got)
    if old != new:
        assert not verify_consistency(old, new, bytes.fromhex(ROOTS[old + 1]), new_root, got)
        assert not verify_consistency(old, new, old_root, bytes.fromhex(ROOTS[new - 1]), got)
        assert not verify_consistency(old, new, old_root, new_root, got[:-1])


def test_the_frontier_travels_as_text_and_checks_its_shape() -> None:
    frontier = Frontier.of(LEAVES[:7])
    again = Frontier.from_text(7, frontier.to_text())
    assert again == frontier and again.root() == frontier.root()
    assert Frontier.from_text(0, "").root() == EMPTY_ROOT
    with pytest.raises(ValueError, match="3 nodes"):
        Frontier(7, frontier.nodes[:2])


def test_out_of_range_proofs_are_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_path(3, LEAVES[:3])
    with pytest.raises(ValueError):
        consistency_path(4, LEAVES[:3])
    assert not verify_inclusion(3, 3, LEAVES[0], [], EMPTY_ROOT)
    assert not verify_consistency(4, 3, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, root(LEAVES[:5]), [])
    assert not verify_consistency(0, 5, LEAVES[0], root(LEAVES[:5]), [])


leaves_st = st.lists(st.binary(min_size=0, max_size=8).map(leaf_hash), min_size=1, max_size=70)


@settings(max_examples=60, deadline=None)
@given(leaves=leaves_st, data=st.data())
def test_every_proof_agrees_with_the_naive_recursion(
    leaves: list[bytes], data: st.DataObject
) -> None:
    n = len(leaves)
    head = _mth(leaves)
    assert root(leaves) == head
    frontier = Frontier()
    for i, leaf in enumerate(leaves):
        frontier.append(leaf)
        assert frontier.root() == _mth(leaves[: i + 1])
    index = data.draw(st.integers(0, n - 1))
    path = inclusion_path(index, leaves)
    assert path == _path(index, leaves)
    assert verify_inclusion(index, n, leaves[index], path, head)
    flip = data.draw(st.integers(0, max(len(path) - 1, 0)))
    if path:
        bad = [*path]
        bad[flip] = bytes([bad[flip][0] ^ 1]) + bad[flip][1:]
        assert not verify_inclusion(index, n, leaves[index], bad, head)
    if n > 1:
        other = (index + 1) % n
        assert leaves[other] == leaves[index] or not verify_inclusion(
            other, n, leaves[index], path, head
        )
    old = data.draw(st.integers(0, n))
    proof = consistency_path(old, leaves)
    if 0 < old < n:
        assert proof == _subproof(old, leaves, True)
    assert verify_consistency(old, n, _mth(leaves[:old]), head, proof)
    if 0 < old < n:
        changed = [*leaves[:old]]
        changed[0] = leaf_hash(b"forged" + changed[0])
        assert not verify_consistency(old, n, _mth(changed), head, proof)


@settings(max_examples=60, deadline=None)
@given(leaves=leaves_st, data=st.data())
def test_proofs_from_ranges_read_each_leaf_at_most_once(
    leaves: list[bytes], data: st.DataObject
) -> None:
    """The proofs over a log too large to hold ask for the heads of ranges of its leaves:
    the same paths, and no leaf read twice (an inclusion proof reads all but its own)."""
    n = len(leaves)
    asked: list[tuple[int, int]] = []

    def range_root(lo: int, hi: int) -> bytes:
        assert 0 <= lo < hi <= n
        asked.append((lo, hi))
        return root(leaves[lo:hi])

    def read() -> list[int]:
        return sorted(i for lo, hi in asked for i in range(lo, hi))

    index = data.draw(st.integers(0, n - 1))
    assert inclusion_path_of(index, n, range_root) == inclusion_path(index, leaves)
    assert read() == [i for i in range(n) if i != index]
    asked.clear()
    old = data.draw(st.integers(0, n))
    assert consistency_path_of(old, n, range_root) == consistency_path(old, leaves)
    assert len(read()) == len(set(read()))
    path = inclusion_path(index, leaves)
    assert root_from_inclusion(index, n, leaves[index], path) == root(leaves)
    if path:  # a node short: no head, or another
        assert root_from_inclusion(index, n, leaves[index], path[:-1]) != root(leaves)
    assert root_from_inclusion(n, n, leaves[index], path) is None  # not a leaf of it
