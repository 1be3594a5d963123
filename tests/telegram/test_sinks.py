"""TelegramSink maps Bot API answers to DeliveryError; LogSink prints plain text."""

from __future__ import annotations

import logging

import pytest
import telegram
from telegram.request import HTTPXRequest

from steward.telegram.sinks import DeliveryError, LogSink, Outgoing, TelegramSink, messages_for
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "123456:TEST-token"


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch):
    """PTB 22 warns on each RetryAfter unless opted in to timedelta values (the sink takes both)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def fake():
    fake = FakeTelegram(token=TOKEN, enforce_limits=False)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def sink(fake):
    request = HTTPXRequest(connection_pool_size=8, read_timeout=2.0, connect_timeout=2.0)
    bot = telegram.Bot(
        TOKEN, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot", request=request
    )
    async with bot:
        yield TelegramSink(bot)


async def test_it_sends_html_and_returns_the_message_id(fake, sink):
    message_id = await sink.deliver(Outgoing("42", "text", text="<b>a &lt; b</b> &amp; c"))
    assert message_id == fake.sent[-1]["message_id"]
    assert fake.sent[-1]["text"] == "a < b & c"


async def test_it_maps_a_429_to_a_retry_after(fake, sink):
    fake.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(DeliveryError) as err:
        await sink.deliver(Outgoing("42", "text", text="x"))
    assert not err.value.permanent and err.value.retry_after == 3
    assert fake.sent == []


async def test_it_maps_a_5xx_to_a_transient_error(fake, sink):
    fake.fail_next("sendMessage", 502)
    with pytest.raises(DeliveryError) as err:
        await sink.deliver(Outgoing("42", "text", text="x"))
    assert not err.value.permanent and err.value.retry_after is None


async def test_it_maps_a_blocked_bot_to_a_permanent_error(fake, sink):
    fake.add_chat(77, blocked=True)
    with pytest.raises(DeliveryError) as err:
        await sink.deliver(Outgoing("77", "text", text="x"))
    assert err.value.permanent and "forbidden" in err.value.reason


async def test_it_maps_a_migrated_group_to_its_new_id(fake, sink):
    fake.add_chat(-5, type="group", migrate_to=-1005)
    with pytest.raises(DeliveryError) as err:
        await sink.deliver(Outgoing("-5", "text", text="x"))
    assert err.value.migrate_to == -1005 and not err.value.permanent


async def test_it_resends_as_plain_text_when_telegram_cannot_parse_the_html(fake, sink, caplog):
    await sink.deliver(Outgoing("42", "text", text="<b>unclosed &amp; raw"))
    assert fake.sent[-1]["text"] == "unclosed & raw"
    assert any(r.levelno == logging.ERROR and "plain text" in r.message for r in caplog.records)


async def test_it_takes_message_is_not_modified_as_done(fake, sink):
    sent = await sink.deliver(Outgoing("42", "text", text="same"))
    again = await sink.deliver(Outgoing("42", "edit_text", text="same", message_id=sent))
    assert again == sent


async def test_it_sends_photos_documents_replies_and_buttons(fake, sink):
    first = await sink.deliver(Outgoing("42", "text", text="question"))
    await sink.deliver(
        Outgoing(
            "42",
            "photo",
            text="<i>chart</i>",
            photo=b"\x89PNG fake",
            reply_to_message_id=first,
            buttons=[[("Stop", "train:stop")]],
        )
    )
    await sink.deliver(Outgoing("42", "document", text="log", document=("run.txt", b"a\nb")))
    photo, document = fake.sent[-2], fake.sent[-1]
    assert photo["method"] == "sendPhoto" and photo["caption"] == "chart"
    assert photo["reply_to_message_id"] == first
    assert "train:stop" in str(photo["reply_markup"])
    assert document["method"] == "sendDocument" and document["caption"] == "log"


async def test_the_log_sink_prints_one_plain_line_per_message(caplog):
    caplog.set_level(logging.INFO, logger="steward.outbox")
    sink = LogSink()
    assert await sink.deliver(Outgoing("42", "text", text="<b>disk</b> &amp; cpu")) == 1
    assert [r.getMessage() for r in caplog.records] == ["notification to 42, message: disk & cpu"]


class Row:
    """An outbox row as the store returns it (only the fields messages_for reads)."""

    def __init__(self, **fields) -> None:
        defaults = dict(
            id=1,
            chat_id="42",
            text=None,
            photo=None,
            caption=None,
            document=None,
            document_name=None,
            buttons=None,
        )
        self.__dict__.update(defaults | fields)


def test_a_row_with_a_long_caption_becomes_the_file_then_the_rest_then_its_text():
    row = Row(photo=b"png", caption="c " * 1000, text="after", buttons=[[["Ok", "x:ok"]]])
    parts = messages_for(row, reply_to_message_id=9)
    assert [p.kind for p in parts] == ["photo", "text", "text"]
    assert parts[0].reply_to_message_id == 9 and parts[1].reply_to_message_id is None
    assert parts[-1].text == "after" and parts[-1].buttons == [[("Ok", "x:ok")]]
    assert parts[0].buttons is None
