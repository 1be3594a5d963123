"""Word sources: the tokenizer, word lists, the bundled list, feeds over real HTTP, the timeline."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
from types import SimpleNamespace
from urllib.parse import parse_qsl

import pytest

from steward.posting import sources
from steward.posting.sources import (
    BundledSource,
    FeedSource,
    MergedSource,
    SourceError,
    WordListSource,
    tokenize,
)

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Garden news</title><link>http://example.com/</link>
<description>news</description>
<item><title>Tulips bloom early</title>
<description>&lt;p&gt;The &lt;b&gt;orchard&lt;/b&gt; smells of blossom, see
https://example.com/x #spring @gardener 2026&lt;/p&gt;</description></item>
<item><title>Кошки спят на крышах</title><description>Мы видели кошек.</description></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Sky</title><id>urn:sky</id>
<updated>2026-01-01T00:00:00Z</updated>
<entry><title>Comet returns</title><id>urn:1</id><updated>2026-01-01T00:00:00Z</updated>
<summary>A bright comet over the harbor.</summary></entry>
</feed>"""


class FeedHandler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, str]] = {}

    def do_GET(self):
        status, kind, body = self.routes.get(self.path, (404, "text/plain", "not found"))
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def feed_server():
    FeedHandler.routes = {
        "/rss": (200, "application/rss+xml; charset=utf-8", RSS),
        "/atom": (200, "application/atom+xml", ATOM),
        "/page": (200, "text/html", "<html><body>Not a feed at all</body></html>"),
        "/broken": (500, "text/plain", "oops"),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FeedHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


needs_pymorphy = pytest.mark.skipif(
    not sources.russian_nouns_available(), reason="pymorphy3 (the russian extra) is not installed"
)


def test_it_keeps_words_and_drops_urls_mentions_hashtags_numbers_and_stop_words():
    text = "The Owl and @fox_1 saw #sunset at https://t.co/abc, www.site.org 2026 times, OK?"
    assert tokenize(text) == ["owl", "saw", "times"]


@needs_pymorphy
def test_it_keeps_russian_nouns_only_in_their_dictionary_form():
    assert tokenize("Кошками гуляли по крышам, а потом спали") == ["кошка", "крыша"]


def test_it_reads_an_inline_word_list_separated_by_commas_or_new_lines():
    source = WordListSource(" owl, fox\nwren ,, owl\n\n old friend ")
    assert source.words() == ["owl", "fox", "wren", "old friend"]


def test_it_reads_a_word_list_file_with_comments(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# my words\nowl\nfox, wren\n")
    assert WordListSource(str(path)).words() == ["owl", "fox", "wren"]


def test_it_explains_a_word_list_that_gives_no_words(tmp_path):
    with pytest.raises(SourceError) as caught:
        WordListSource(str(tmp_path / "nope.txt"))
    assert str(caught.value) == f"names the file {tmp_path / 'nope.txt'}, which does not exist"
    with pytest.raises(SourceError) as caught:
        WordListSource(" , \n ")
    assert str(caught.value) == "has no words; separate words with commas or new lines"


def test_it_ships_about_two_hundred_distinct_words():
    words = BundledSource().words()
    assert 190 <= len(words) <= 250
    assert len(set(words)) == len(words)
    assert all(w.isalpha() and w.islower() for w in words)


def test_it_reads_words_from_an_rss_feed(feed_server):
    words = FeedSource(f"{feed_server}/rss").words()
    assert {"tulips", "bloom", "early", "orchard", "smells", "blossom"} <= set(words)
    assert not {"spring", "gardener", "2026", "example", "the", "p", "b"} & set(words)
    if sources.russian_nouns_available():
        assert {"кошка", "крыша"} <= set(words) and "спят" not in words


def test_it_reads_words_from_an_atom_feed(feed_server):
    assert FeedSource(f"{feed_server}/atom").words() == [
        "comet",
        "returns",
        "bright",
        "harbor",
    ]


@pytest.mark.parametrize(
    ("path", "problem"),
    [("/broken", "answered HTTP 500"), ("/missing", "answered HTTP 404"), ("/page", "no entries")],
)
def test_it_explains_a_feed_it_cannot_use(feed_server, path, problem):
    with pytest.raises(SourceError, match=problem):
        FeedSource(f"{feed_server}{path}").words()


def test_it_explains_a_feed_it_cannot_reach():
    with pytest.raises(SourceError, match=r"could not fetch the feed http://127\.0\.0\.1:9/"):
        FeedSource("http://127.0.0.1:9/", timeout=2).words()


def test_it_merges_sources_and_skips_one_that_fails(feed_server):
    merged = MergedSource([WordListSource("owl, comet"), FeedSource(f"{feed_server}/broken")])
    assert merged.words() == ["owl", "comet"]
    assert merged.problems == [f"the feed {feed_server}/broken answered HTTP 500"]
    with pytest.raises(SourceError, match="answered HTTP 500"):
        MergedSource([FeedSource(f"{feed_server}/broken")]).words()


TICK = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def reader(sqlite_url):
    """The reader account on the fake X, and a migrated store for the timeline's cursor."""
    from steward import db
    from steward.posting.x_client import make_client
    from tests.fakes.x_api import FakeX

    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    with FakeX(consumer_key="ck", consumer_secret="cs") as fake:
        fake.add_user("77", "reader", "77-token", "77-secret")
        client = make_client("ck", "cs", "77-token", "77-secret", fake.url)

        def source(tick: dt.datetime, grab: int = 3) -> sources.TimelineSource:
            return sources.TimelineSource(client, engine, tick=tick, grab=grab, clock=lambda: tick)

        def timeline_calls() -> list[dict[str, str]]:
            """The query of each home-timeline request."""
            found = [c for c in fake.calls if "reverse_chronological" in c["path"]]
            return [dict(parse_qsl(c["query"])) for c in found]

        yield SimpleNamespace(fake=fake, source=source, calls=timeline_calls)
        client.session.close()
    engine.dispose()


def test_the_timeline_gives_the_words_of_the_newest_posts_and_keeps_a_cursor(reader):
    for text in ("Old lighthouse stories", "Morning tide", "Quiet harbor", "Seagulls circle"):
        reader.fake.add_timeline_post("77", text)
    assert reader.source(TICK).words() == [
        "seagulls",
        "circle",
        "quiet",
        "harbor",
        "morning",
        "tide",
    ]
    (first,) = reader.calls()
    assert first["max_results"] == "3", "the seed's TWEET_GRAB=3 is a valid request"
    reader.fake.add_timeline_post("77", "Lantern glow")
    later = reader.source(TICK + dt.timedelta(minutes=30)).words()
    assert later[:2] == ["lantern", "glow"] and "seagulls" in later, "new words first, old kept"
    second = reader.calls()[-1]
    assert int(second["since_id"]) > 0, "only posts newer than the last tick's"


def test_one_tick_reads_the_timeline_once_even_across_a_restart(reader):
    reader.fake.add_timeline_post("77", "Northern lights")
    words = reader.source(TICK).words()
    assert reader.source(TICK).words() == words  # a new source object: as after a restart
    assert len(reader.calls()) == 1


def test_when_x_fails_the_kept_words_are_used_and_the_problem_is_told(reader):
    reader.fake.add_timeline_post("77", "Autumn orchard")
    reader.source(TICK).words()
    reader.fake.fail_next("/2/users", 503)
    retry = reader.source(TICK + dt.timedelta(minutes=30))
    assert retry.words() == ["autumn", "orchard"]
    assert retry.problem.startswith("could not read the reader's timeline: 503")


def test_with_nothing_kept_a_failing_timeline_is_a_source_error(reader):
    reader.fake.fail_next("/2/users", 401)
    with pytest.raises(SourceError, match="could not read the reader's timeline: 401"):
        reader.source(TICK).words()
