"""CHECKS and CHECKS_FILE: the compact form, JSON and TOML, and a sentence for every bad value."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from steward.monitoring.spec import ChecksError, load_checks, parse_checks, parse_target


def test_it_reads_every_kind_from_the_compact_form():
    text = (
        "api=https://example.com/health timeout=5 alert_above=800; db=tcp://db.internal:5432\n"
        "node=evm:https://node.example|https://ref1.example,https://ref2.example "
        "alert_above=10 clear_below=3 stall_after=5m; q=python:myapp.checks:depth renotify=0"
    )
    api, db, node, q = parse_checks(text)
    assert (api.kind, api.url, api.timeout, api.rules.alert_above) == (
        "http",
        "https://example.com/health",
        5.0,
        800.0,
    )
    assert (db.kind, db.host, db.port) == ("tcp", "db.internal", 5432)
    assert node.kind == "evm_lag"
    assert node.references == ("https://ref1.example", "https://ref2.example")
    assert (node.rules.alert_above, node.rules.clear_below) == (10.0, 3.0)
    assert node.stall_after == dt.timedelta(minutes=5)
    assert (q.kind, q.function, q.rules.renotify) == ("python", "myapp.checks:depth", None)


def test_it_gives_the_documented_defaults():
    (api,) = parse_checks("api=https://example.com/health")
    assert api.interval is None and api.timeout == 10.0
    assert (api.rules.fail_threshold, api.rules.ok_threshold) == (3, 2)
    assert api.rules.renotify == dt.timedelta(hours=1)


def test_quoted_options_keep_spaces_and_semicolons():
    (api,) = parse_checks(
        """api=https://x.example/s condition='$.status == "ok"' contains="a; b" interval=30s"""
    )
    assert api.condition.source == '$.status == "ok"'
    assert api.contains == "a; b"
    assert api.interval == 30


def test_it_reads_a_json_list():
    raw = [
        {"name": "api", "kind": "http", "url": "https://x.example", "fail_threshold": 5},
        {"name": "db", "kind": "tcp", "host": "db", "port": 5432, "interval": 120},
        {
            "name": "node",
            "kind": "evm_lag",
            "url": "https://n.example",
            "references": ["https://r1.example", "https://r2.example", "https://r3.example"],
            "alert_above": 10,
        },
        {"name": "q", "kind": "python", "function": "app.checks:depth", "alert_below": 1},
    ]
    api, db, node, q = parse_checks(json.dumps(raw))
    assert api.rules.fail_threshold == 5
    assert db.interval == 120
    assert len(node.references) == 3
    assert q.rules.alert_below == 1.0


def test_it_reads_a_toml_file_and_a_json_file_next_to_checks(tmp_path):
    toml = tmp_path / "checks.toml"
    toml.write_text(
        '[[checks]]\nname = "api"\nkind = "http"\nurl = "https://x.example"\nrenotify = "30m"\n'
        '\n[[checks]]\nname = "db"\nkind = "tcp"\nhost = "db"\nport = 5432\n'
    )
    as_json = tmp_path / "checks.json"
    as_json.write_text(json.dumps({"checks": [{"name": "q", "kind": "python", "function": "a:b"}]}))
    specs = load_checks("web=https://web.example", str(toml))
    assert [s.name for s in specs] == ["web", "api", "db"]
    assert specs[1].rules.renotify == dt.timedelta(minutes=30)
    assert [s.name for s in load_checks(None, str(as_json))] == ["q"]


@pytest.mark.parametrize(
    ("value", "sentence"),
    [
        ("api", "entry 'api' is not name=target; expected name=target entries separated by ';'"),
        ("api=ftp://x", "check 'api' has the target 'ftp://x', which is none of: an http(s) URL"),
        ("db=tcp://db", "check 'db' has 'tcp://db'; expected host and port like tcp://"),
        (
            "api=https://x.example fail_threshold=0",
            "check 'api' has fail_threshold='0'; expected a whole number 1-1000",
        ),
        ("api=https://x.example tiemout=5", "check 'api' has the unknown option 'tiemout'"),
        ("n=evm:https://x.example", "check 'n' lists no references; expected url and references"),
        (
            "n=evm:https://x.example|ws://r",
            "check 'n' has the reference 'ws://r'; expected an http",
        ),
        ("api=https://x.example clear_below=3", "check 'api' sets clear_below without alert_above"),
        (
            "api=https://x.example alert_above=1 clear_below=3",
            "check 'api' has clear_below above alert_above",
        ),
        ("a=https://x.example; a=https://y.example", "check 'a' is defined twice"),
        ("q=python:os", "check 'q' has the function 'os'; expected function like python:"),
        (
            "api=https://x.example interval=soon",
            "check 'api' has interval='soon'; expected seconds",
        ),
        ("api=https://x.example condition=status", "check 'api': condition 'status' is not of"),
        ("api=https://x.example alert_above=lots", "check 'api' has alert_above='lots'"),
        ("api=https://x.example 'unclosed", "has an unclosed quote"),
        ('[{"name": "x", "kind": "smtp"}]', "check 'x' has the kind 'smtp'; expected one of http"),
        ('[{"name": "x y", "kind": "http"}]', "check #1 has the name 'x y'"),
        ('[{"name": "x", "kind": "tcp", "host": "h"}]', "check 'x' has no port"),
        ('[{"name": "x", "kind": "http"}]', "check 'x' has no url; expected an http(s) URL"),
        ("[1]", "check #1 in the JSON list is not an object"),
        ("[oops", "is not valid JSON"),
    ],
)
def test_a_bad_value_gets_a_sentence_naming_the_check(value, sentence):
    with pytest.raises(ChecksError) as caught:
        load_checks(value)
    assert sentence in str(caught.value)


def test_a_bad_file_gets_a_sentence_naming_it(tmp_path):
    bad = tmp_path / "checks.toml"
    bad.write_text("[[checks]\n")
    with pytest.raises(ChecksError, match="is not valid TOML"):
        load_checks(None, str(bad))
    with pytest.raises(ChecksError, match="cannot be read"):
        load_checks(None, str(tmp_path / "missing.json"))
    with pytest.raises(ChecksError, match="is neither .toml nor .json"):
        load_checks(None, str(tmp_path / "checks.yaml"))


@pytest.mark.parametrize(
    ("kind", "text", "options"),
    [
        (
            "http",
            " https://example.com/health ",
            {"kind": "http", "url": "https://example.com/health"},
        ),
        ("tcp", "db.internal:5432", {"kind": "tcp", "host": "db.internal", "port": 5432}),
        ("tcp", "tcp://db:1", {"kind": "tcp", "host": "db", "port": 1}),
        (
            "evm_lag",
            "https://n|https://r",
            {"kind": "evm_lag", "url": "https://n", "references": "https://r"},
        ),
    ],
)
def test_a_target_typed_for_a_kind_may_leave_out_the_prefix(kind, text, options):
    assert parse_target(kind, text) == options


def test_a_target_of_the_wrong_form_for_its_kind_is_refused_with_the_form():
    with pytest.raises(ChecksError, match="needs a url like https://example.com/health"):
        parse_target("http", "example.com")
    with pytest.raises(ChecksError, match="^this check has url='https://a b'"):
        parse_target("http", "https://a b")
