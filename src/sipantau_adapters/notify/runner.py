"""Running ``desk.tick()`` in the background: a thread for a server process."""

from __future__ import annotations

import logging
import threading

from sipantau_core.desk import Desk

__all__ = ["TickLoop"]

log = logging.getLogger(__name__)


class TickLoop:
    """Calls ``desk.tick()`` every ``interval`` seconds in a daemon thread until
    :meth:`stop`; a tick that fails is logged and the loop goes on."""

    def __init__(self, desk: Desk, interval: float = 15.0):
        if interval <= 0:
            raise ValueError("the interval must be positive")
        self.desk = desk
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TickLoop:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sipantau-tick", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.desk.tick()
            except Exception:
                log.exception("sipantau: desk.tick() failed")
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> TickLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
