"""sipantau_adapters: plugins that wire the core to storage, transports and channels,
and the ``sipantau`` command line."""

from __future__ import annotations

__all__: list[str] = []
