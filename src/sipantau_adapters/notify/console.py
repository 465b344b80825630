"""Console channel for development: each message to stderr, stdout or a logger."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

from sipantau_core.access import Classification
from sipantau_core.notify import Channel, Message

__all__ = ["ConsoleChannel"]

log = logging.getLogger("sipantau.notify.console")


class ConsoleChannel(Channel):
    """Writes each message (``to`` a stream: ``"stderr"``, ``"stdout"`` or any text
    stream, or ``"log"``: the logger ``sipantau.notify.console`` at INFO)."""

    kind = "console"

    def __init__(
        self,
        name: str,
        *,
        clearance: Classification | str,
        to: str | TextIO = "stderr",
        max_items: int = 50,
    ):
        super().__init__(name, clearance=clearance, max_items=max_items, max_chars=20000)
        if isinstance(to, str) and to not in ("stderr", "stdout", "log"):
            raise ValueError(f"console channel {name}: 'to' is stderr, stdout or log")
        self.to = to
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        head = f"[{self.name} → {message.recipient or '*'}] {message.subject}"
        if self.to == "log":
            log.info("%s\n%s", head, message.text)
            return
        stream = sys.stderr if self.to == "stderr" else sys.stdout if self.to == "stdout" else None
        out = stream if stream is not None else self.to
        assert not isinstance(out, str)
        with self._lock:
            out.write(f"{head}\n{message.text}\n\n")
            out.flush()
