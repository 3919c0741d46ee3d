"""
The bundled stores pass the store conformance suite.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import TestCase

from mqttd.store.memory import MemoryStore
from mqttd.store.sqlite import SQLiteStore
from mqttd.testing import StoreConformanceMixin
from tests.clienthelpers import tempDirectory


class MemoryStoreConformanceTests(StoreConformanceMixin, TestCase):
    def makeStore(self) -> Any:
        return MemoryStore()

    def reopenStore(self, store: Any) -> Any:
        return store


class SQLiteStoreConformanceTests(StoreConformanceMixin, TestCase):
    def makeStore(self) -> Any:
        self.path = os.path.join(tempDirectory(self), "store.db")
        return SQLiteStore(self.path)

    def reopenStore(self, store: Any) -> Any:
        return SQLiteStore(self.path)
