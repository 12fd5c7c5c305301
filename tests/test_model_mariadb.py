"""The namespace property test of tests/test_model.py, run on MariaDB.

The same state machine and rules; each example gets a fresh database on the
session's MariaDB, and the machine's restart rule reopens the engine on it, so the
tree invariant also checks what MariaDB persisted. Fewer examples than on the local
engines: every step ends with a full fsck, which here costs many round trips.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine

from conftest import formatted
from engines import open_engine
from metaserver.runner import Runner

model = pytest.importorskip("test_model", reason="tests/test_model.py is not in this tree")


class MariaDBMachine(model.NamespaceMachine):
    persistent = True       # enables the restart rule
    server = None           # the session's MariaDB, set by the fixture below

    def __init__(self) -> None:
        # NamespaceMachine.__init__ picks RocksDB or memory; this is its MariaDB twin.
        RuleBasedStateMachine.__init__(self)
        self.tmp = None
        self.url = self.server.new_database()
        self.engine = open_engine(self.url, create=True)
        self.pair = model.Pair(Runner(formatted(self.engine)))

    def teardown(self) -> None:
        super().teardown()
        self.server.drop_database(self.url)


@pytest.fixture(autouse=True)
def _server(mariadb_server):
    MariaDBMachine.server = mariadb_server


TestModelMariaDB = MariaDBMachine.TestCase
TestModelMariaDB.settings = settings(model.PROFILE, max_examples=min(model.PROFILE.max_examples, 15))
