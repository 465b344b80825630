"""Real, tiny images for the photo tests: a PNG drawn here (a sheet of ruled lines and a
coloured band, so that each is different), and the first bytes of a JPEG and a WebP."""

from __future__ import annotations

import hashlib
import struct
import zlib


def png(width: int = 24, height: int = 32, *, seed: int = 0) -> bytes:
    """An RGB PNG of ``width`` × ``height``: white paper, grey lines, a band whose colour
    depends on ``seed`` (different seeds, different bytes)."""
    band = ((seed * 67) % 256, (seed * 131 + 80) % 256, (seed * 29 + 160) % 256)
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter: none
        for x in range(width):
            if y < height // 5:
                pixel = band
            elif y % 4 == 0 or x in (1, width - 2):
                pixel = (150, 150, 150)
            else:
                pixel = (250, 250, 245)
            row.extend(pixel)
        rows.append(bytes(row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


#: The start of a JPEG (SOI and a JFIF APP0 marker) with some bytes after: what the desk
#: reads its type from. Not a picture a browser draws.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(200)
#: The start of a WebP (RIFF … WEBP).
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + bytes(40)
#: Files that are not photos the desk takes.
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
