"""Monitoring fixtures: a target server with two healthy endpoints."""

from __future__ import annotations

import pytest

from tests.monitoring.targets import Route, TargetServer


@pytest.fixture
def server():
    """/api and /web answer 200 until a test says otherwise."""
    srv = TargetServer()
    srv.routes["/api"] = Route(200, b"ok")
    srv.routes["/web"] = Route(200, b"ok")
    yield srv
    srv.stop()
