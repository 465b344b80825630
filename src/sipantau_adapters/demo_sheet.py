"""The photo of a tally sheet for the demo: a small greyscale PNG drawn from the sheet's
true figures (what the monitor photographed, whatever was then typed or misread).

A header band, one row per candidate pair with its number and votes in large digits, then
the valid, invalid and total votes; ruled lines, a little skew of the paper's edge. Drawn
with the standard library (``zlib``) in a few milliseconds, deterministic for a tally.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

from sipantau_core.domain import TallyReport

__all__ = ["sheet_photo"]

#: 3 × 5 pixel digits (rows top to bottom, "1" = ink).
_DIGITS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    ".": ("000", "000", "000", "000", "010"),
}
WIDTH, ROW = 180, 34
_PAPER, _RULE, _INK, _BAND = 246, 170, 30, 205


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _png(rows: Sequence[bytearray], width: int) -> bytes:
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    header = struct.pack(">IIBBBBB", width, len(rows), 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _text(rows: list[bytearray], text: str, x: int, y: int, scale: int) -> None:
    """Draw ``text`` (digits and dots) with its top left corner at (x, y)."""
    for ch in text:
        glyph = _DIGITS.get(ch)
        if glyph is not None:
            for gy, line in enumerate(glyph):
                for gx, bit in enumerate(line):
                    if bit == "1":
                        left = x + gx * scale
                        for dy in range(scale):
                            rows[y + gy * scale + dy][left : left + scale] = bytes([_INK]) * scale
        x += 4 * scale


def sheet_photo(tally: TallyReport) -> bytes:
    """The PNG of the sheet of ``tally``: its pairs' votes, valid, invalid and total."""
    lines = [(f"{n}.", str(v)) for n, v in sorted(tally.votes.items())]
    lines += [("", str(tally.valid)), ("", str(tally.invalid)), ("", str(tally.total))]
    height = 40 + ROW * len(lines) + 12
    paper = bytearray([_PAPER]) * WIDTH
    rows = [bytearray(paper) for _ in range(height)]
    for y in range(4, 30):  # the form's header band
        rows[y][6 : WIDTH - 6] = bytes([_BAND]) * (WIDTH - 12)
    for i in range(len(lines) + 1):  # ruled lines between the rows
        y = 38 + ROW * i
        rows[y][6 : WIDTH - 6] = bytes([_RULE]) * (WIDTH - 12)
    for y in range(height):  # the paper's left edge, slightly skewed
        rows[y][: 2 + y // 80] = bytes([90]) * (2 + y // 80)
    for i, (label, figure) in enumerate(lines):
        top = 38 + ROW * i + 7
        _text(rows, label, 12, top, 4)
        _text(rows, figure, WIDTH - 12 - len(figure) * 16, top, 4)
    return _png(rows, WIDTH)
