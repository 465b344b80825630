"""The contract suites against the memory backend."""

from __future__ import annotations

import pytest

from sipantau_adapters.storage.memory import MemoryStorage
from sipantau_core.ports import Storage
from sipantau_core.testing.contracts import DeskContract, StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Storage:
        return MemoryStorage()


class TestMemoryDesk(DeskContract):
    @pytest.fixture
    def storage_url(self) -> str:
        return "memory://"
