"""The fake X every posting test talks to: one user, alice (id 42), with her access token."""

from __future__ import annotations

import pytest

from tests.fakes.x_api import FakeX


@pytest.fixture
def fake():
    with FakeX(consumer_key="ck", consumer_secret="cs") as server:
        server.add_user("42", "alice", "42-token", "42-secret")
        yield server
