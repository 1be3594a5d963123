"""Each kind of check against real servers on loopback: good, slow, wrong and down targets."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time

import pytest

from steward.monitoring.checks import Runner, display_url
from steward.monitoring.spec import build, parse_checks
from tests.clock import Clock
from tests.fakes.evm_node import FakeEvmNode
from tests.monitoring import pychecks
from tests.monitoring.targets import T0, Route, TargetServer


@pytest.fixture
def server():
    srv = TargetServer()
    yield srv
    srv.stop()


@pytest.fixture
async def runner():
    r = Runner(clock=Clock(T0))
    yield r
    await r.aclose()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(text: str):
    return parse_checks(text)[0]


async def test_it_measures_a_good_http_target_in_milliseconds(server, runner):
    server.routes["/health"] = Route(200, b"fine")
    sample = await runner.run_one(one(f"api={server.url('/health')}"))
    assert sample.status == "ok"
    assert sample.details == {"status_code": 200}
    assert 0 < sample.value < 1000


async def test_it_calls_a_server_error_bad_and_says_which(server, runner):
    server.routes["/health"] = Route(500, b"boom")
    sample = await runner.run_one(one(f"api={server.url('/health')}"))
    assert sample.status == "bad"
    assert sample.details["status_code"] == 500
    assert sample.details["error"] == "HTTP 500 Internal Server Error"


async def test_it_accepts_only_the_expected_status_when_one_is_given(server, runner):
    server.routes["/gone"] = Route(410, b"")
    good = await runner.run_one(one(f"api={server.url('/gone')} expect_status=410"))
    server.routes["/gone"] = Route(200, b"")
    bad = await runner.run_one(one(f"api={server.url('/gone')} expect_status=410"))
    assert (good.status, bad.status) == ("ok", "bad")


async def test_it_calls_a_refused_connection_bad(runner):
    sample = await runner.run_one(one(f"api=http://127.0.0.1:{closed_port()}/health"))
    assert sample.status == "bad"
    assert sample.value is None
    assert "ConnectError" in sample.details["error"]


async def test_it_calls_a_slow_target_bad_after_its_timeout(server, runner):
    server.routes["/slow"] = Route(200, b"late", delay=5)
    began = time.perf_counter()
    sample = await runner.run_one(one(f"api={server.url('/slow')} timeout=0.3"))
    assert time.perf_counter() - began < 1.5
    assert sample.status == "bad"
    assert sample.details["error"] == "no answer within 0.3s"


async def test_it_checks_that_the_body_contains_a_text(server, runner):
    spec = one(f"api={server.url('/')} contains='all good'")
    server.routes["/"] = Route(200, b"<p>all good</p>")
    assert (await runner.run_one(spec)).status == "ok"
    server.routes["/"] = Route(200, b"<p>maintenance</p>")
    sample = await runner.run_one(spec)
    assert sample.status == "bad"
    assert sample.details["error"] == "the body does not contain 'all good'"


async def test_it_checks_a_json_path_condition_on_the_body(server, runner):
    spec = one(f"""api={server.url("/s")} condition='$.checks[1].status == "ok"'""")
    body = {"checks": [{"status": "ok"}, {"status": "ok"}]}
    server.routes["/s"] = Route(200, json.dumps(body).encode(), content_type="application/json")
    assert (await runner.run_one(spec)).status == "ok"
    body["checks"][1]["status"] = "degraded"
    server.routes["/s"] = Route(200, json.dumps(body).encode(), content_type="application/json")
    sample = await runner.run_one(spec)
    assert sample.status == "bad"
    assert sample.details["error"] == (
        '$.checks[1].status == "ok" failed: $.checks[1].status is "degraded"'
    )
    server.routes["/s"] = Route(200, b"<html>", content_type="text/html")
    assert (await runner.run_one(spec)).details["error"] == "the body is not JSON"


async def test_it_measures_a_tcp_connect_and_calls_a_closed_port_bad(server, runner):
    good = await runner.run_one(one(f"db=tcp://127.0.0.1:{server.port}"))
    bad = await runner.run_one(one(f"db=tcp://127.0.0.1:{closed_port()}"))
    assert good.status == "ok" and good.value >= 0
    assert bad.status == "bad" and "ConnectionRefusedError" in bad.details["error"]


@pytest.fixture
def nodes():
    made = [FakeEvmNode(1000), FakeEvmNode(1005), FakeEvmNode(1010), FakeEvmNode(1200)]
    yield made
    for node in made:
        node.stop()


def evm(nodes, **options):
    extra = " ".join(f"{k}={v}" for k, v in options.items())
    refs = ",".join(n.url for n in nodes[1:])
    return one(f"node=evm:{nodes[0].url}|{refs} {extra}")


async def test_it_measures_evm_lag_against_the_median_of_the_references(nodes, runner):
    sample = await runner.run_one(evm(nodes))
    assert sample.status == "ok"
    # References disagree (1005, 1010, 1200): the median ignores the one far ahead.
    assert sample.value == 10.0
    assert sample.details["height"] == 1000
    assert [r["height"] for r in sample.details["references"]] == [1005, 1010, 1200]
    nodes[0].height = 1010
    assert (await runner.run_one(evm(nodes))).value == 0.0


async def test_it_still_judges_the_lag_when_a_minority_of_references_is_down(nodes, runner):
    nodes[3].stop()
    sample = await runner.run_one(evm(nodes))
    # 1005 and 1010 answered, the third reference refused: 2 of 3 is a majority.
    assert sample.status == "ok"
    assert sample.value == 7.5
    assert "ConnectError" in sample.details["references"][2]["error"]


async def test_it_tells_a_reference_error_from_a_height(nodes, runner):
    nodes[2].mode = "error"
    sample = await runner.run_one(evm(nodes))
    assert sample.details["references"][1] == {
        "url": display_url(nodes[2].url),
        "error": "RPC error header not found",
    }
    assert sample.value == 102.5  # median of 1005 and 1200


async def test_it_is_unknown_not_bad_when_most_references_are_down(nodes, runner):
    nodes[1].mode = "http500"
    nodes[2].mode = "garbage"
    sample = await runner.run_one(evm(nodes))
    assert sample.status == "unknown"
    assert sample.value is None
    assert sample.details["error"].startswith("only 1 of 3 references answered")


async def test_it_needs_a_strict_majority_of_references(nodes, runner):
    nodes[2].mode = "http500"
    sample = await runner.run_one(evm(nodes[:3]))  # two references, one down: not a majority
    assert sample.status == "unknown"


async def test_it_calls_the_node_bad_when_it_does_not_answer(nodes, runner):
    nodes[0].mode = "hang"
    sample = await runner.run_one(evm(nodes, timeout=0.3))
    assert sample.status == "bad"
    assert sample.details["error"] == "the node: no answer within 0.3s"
    assert [r["height"] for r in sample.details["references"]] == [1005, 1010, 1200]


async def test_it_calls_a_node_whose_height_stands_still_stalled(nodes, runner):
    spec = evm(nodes, stall_after="5m")
    clock = runner.clock
    assert (await runner.run_one(spec)).status == "ok"
    clock.now += dt.timedelta(minutes=4)
    assert (await runner.run_one(spec)).status == "ok"
    clock.now += dt.timedelta(minutes=2)
    stalled = await runner.run_one(spec)
    assert stalled.status == "bad"
    assert stalled.details["error"] == "height 1000 unchanged for 6m"
    nodes[0].height = 1001
    clock.now += dt.timedelta(minutes=1)
    assert (await runner.run_one(spec)).status == "ok"


async def test_it_never_shows_the_path_or_query_of_an_rpc_url():
    assert (
        display_url("https://mainnet.example.io/v3/SECRETKEY?x=1") == "https://mainnet.example.io/…"
    )
    assert display_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"


@pytest.mark.parametrize(
    ("result", "status", "value"),
    [(3.5, "ok", 3.5), (7, "ok", 7.0), (True, "ok", 1.0), (False, "bad", 0.0)],
)
async def test_it_takes_a_number_or_a_bool_from_a_python_check(runner, result, status, value):
    pychecks.result = result
    sample = await runner.run_one(one("q=python:tests.monitoring.pychecks:value"))
    assert (sample.status, sample.value) == (status, value)


async def test_it_runs_an_async_python_check_on_the_loop(runner):
    pychecks.result = 2
    sample = await runner.run_one(one("q=python:tests.monitoring.pychecks:async_value"))
    assert (sample.status, sample.value) == ("ok", 2.0)


@pytest.mark.parametrize(
    ("function", "result", "error"),
    [
        ("value", RuntimeError("queue unreachable"), "queue unreachable"),
        ("value", "many", "returned 'many', not a number or a bool"),
        ("value", float("nan"), "returned nan, not a number or a bool"),
        ("missing", None, "cannot load tests.monitoring.pychecks:missing"),
        ("not_a_function", None, "not_a_function is not a function"),
    ],
)
async def test_it_is_unknown_when_a_python_check_cannot_evaluate(runner, function, result, error):
    pychecks.result = result
    sample = await runner.run_one(one(f"q=python:tests.monitoring.pychecks:{function}"))
    assert sample.status == "unknown"
    assert error in sample.details["error"]


async def test_it_does_not_start_a_hung_python_check_again_on_top_of_itself(runner):
    spec = one("q=python:tests.monitoring.pychecks:hangs timeout=0.2")
    pychecks.release.clear()
    try:
        first = await runner.run_one(spec)
        second = await runner.run_one(spec)
    finally:
        pychecks.release.set()
    assert first.details["error"] == "no answer within 0.2s"
    assert second.details["error"] == "its previous run has not returned yet"
    assert first.status == second.status == "unknown"


async def test_one_hanging_target_does_not_delay_the_others(server, runner):
    server.routes["/fast"] = Route(200, b"ok")
    server.routes["/hang"] = Route(200, b"", delay=30)
    specs = [
        build({"name": f"c{i}", "kind": "http", "url": server.url("/fast")}) for i in range(60)
    ]
    specs += [
        build({"name": f"h{i}", "kind": "http", "url": server.url("/hang"), "timeout": 0.5})
        for i in range(8)
    ]
    runner.concurrency = 10
    began = time.perf_counter()
    samples = await runner.run(specs)
    took = time.perf_counter() - began
    assert [s.status for s in samples[:60]] == ["ok"] * 60
    assert [s.status for s in samples[60:]] == ["bad"] * 8
    # One after the other, the eight hangs alone would take 4 s.
    assert took < 2.0


async def test_a_slow_reference_counts_toward_the_quorum_not_against_the_node(nodes, runner):
    nodes[3].mode = "drip"  # each byte in time, the whole answer seconds late
    began = time.perf_counter()
    sample = await runner.run_one(evm(nodes, timeout=0.5))
    assert time.perf_counter() - began < 1.4
    assert sample.status == "ok", sample.details
    assert sample.value == 7.5  # 1005 and 1010 answered: a majority of three
    assert sample.details["references"][2]["error"] == "no answer within 0.5s"


async def test_a_slow_node_is_bad_within_its_timeout(nodes, runner):
    nodes[0].mode = "drip"
    sample = await runner.run_one(evm(nodes, timeout=0.5))
    assert sample.status == "bad"
    assert sample.details["error"] == "the node: no answer within 0.5s"


async def test_a_connection_the_node_dropped_is_retried_once(nodes, runner):
    for node in nodes:
        node.mode = "drop_once"
    sample = await runner.run_one(evm(nodes))
    assert sample.status == "ok", sample.details
    assert sample.value == 10.0


async def test_a_stall_under_a_minute_says_how_many_seconds(nodes, runner):
    spec = evm(nodes, stall_after="30s")
    assert (await runner.run_one(spec)).status == "ok"
    runner.clock.now += dt.timedelta(seconds=40)
    stalled = await runner.run_one(spec)
    assert stalled.details["error"] == "height 1000 unchanged for 40s"


@pytest.mark.parametrize(
    "url",
    [
        "http://" + "a" * 64 + ".example/",  # a DNS label over 63 characters: UnicodeError
        "http://exa\u00admple.com/",  # a soft hyphen: httpx.InvalidURL
    ],
)
async def test_one_check_that_raises_does_not_take_down_the_others(server, runner, url):
    server.routes["/health"] = Route(200, b"fine")
    good = one(f"api={server.url('/health')}")
    broken = build({"name": "broken", "kind": "http", "url": url})
    samples = await runner.run([broken, good])
    assert samples[1].status == "ok"
    assert samples[0].status in ("bad", "unknown") and samples[0].details["error"]
