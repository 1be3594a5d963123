"""What monitoring says: escaped, in the user's time zone, within Telegram's caption limit."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from steward.monitoring.alerts import Event, Sample
from steward.monitoring.messages import event_line, render_events, render_table
from steward.monitoring.spec import parse_checks
from steward.telegram.formatting import CAPTION_LIMIT, visible_length

T0 = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
TOKYO = ZoneInfo("Asia/Tokyo")


def event(kind, check="api", **kw):
    return Event(kind, check, T0 + dt.timedelta(minutes=65), T0, f"k:{check}", **kw)


def test_lines_escape_external_text_and_use_the_users_time_zone():
    (spec,) = parse_checks("api=https://x.example")
    line = event_line(event("alert", details={"error": "<b>boom</b> & co"}), spec, TOKYO)
    assert (
        line == "🔴 <b>api</b> is down since 2026-07-01 21:00 JST: &lt;b&gt;boom&lt;/b&gt; &amp; co"
    )


def test_a_band_alert_says_the_value_and_the_line_it_crossed():
    (spec,) = parse_checks("node=evm:https://n.example|https://r.example alert_above=10")
    line = event_line(event("alert", check="node", value=14.0), spec, TOKYO)
    assert line.endswith(": 14 blocks, alert above 10 blocks")


def test_recoveries_and_repeats_say_how_long():
    (spec,) = parse_checks("api=https://x.example")
    back = event("recovered", duration=dt.timedelta(minutes=65))
    assert (
        event_line(back, spec, dt.UTC)
        == "🟢 <b>api</b> is back (2026-07-01 13:05 UTC), after 1h 5m down."
    )
    still = event("still_down", details={"error": "HTTP 502"})
    assert event_line(still, spec, dt.UTC) == "🔴 <b>api</b> is still down, for 1h 5m now: HTTP 502"


def test_many_alerts_fit_one_caption_and_count_the_rest():
    events = [event("alert", check=f"check{i}", details={"error": "x" * 60}) for i in range(40)]
    caption = render_events(events, {}, dt.UTC)
    assert visible_length(caption) <= CAPTION_LIMIT
    shown = caption.count("is down")
    assert 5 < shown < 40
    assert caption.endswith(f"…and {40 - shown} more")


def test_the_cli_table_has_a_row_per_check():
    specs = {s.name: s for s in parse_checks("api=https://x.example; db=tcp://db:5432")}
    table = render_table(
        [Sample(T0, "api", "ok", 12.0), Sample(T0, "db", "bad", None, {"error": "refused"})], specs
    )
    assert table.splitlines() == [
        "CHECK  KIND  STATUS  VALUE  DETAILS",
        "api    http  ok      12 ms",
        "db     tcp   bad     —      refused",
    ]
