"""Word sources: the tokenizer, word lists, the bundled list, feeds over real HTTP (the reader's
timeline: test_reader.py)."""

from __future__ import annotations

import http.server
import threading

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
