"""The composer: new texts only, never too long, never cut, and a clear end when none are left."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from steward import db
from steward.posting import store
from steward.posting.compose import ComposeError, Composer
from steward.posting.templates import parse_template

NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)
SEED = "%s – это когда тебя любят."
EXHAUSTED = "could not make a new post after 50 tries: the template and words may be exhausted"


class Words:
    """A word source that counts how often it is read."""

    def __init__(self, words: list[str]) -> None:
        self.list = words
        self.reads = 0

    def words(self) -> list[str]:
        self.reads += 1
        return list(self.list)


def composer(engine, raw: str, words: list[str], seed: int = 1) -> Composer:
    return Composer(parse_template(raw), Words(words), engine, random.Random(seed))


def record(engine, text: str, channel: str = "x") -> None:
    with engine.begin() as conn:
        store.record_pending(conn, text=text, channel=channel, now=NOW)


def test_it_fills_the_template_with_words_from_the_source(engine):
    text = composer(engine, SEED, ["кошка"]).compose(["x"])
    assert text == "кошка – это когда тебя любят."


def test_it_never_repeats_a_text_the_store_has(engine):
    record(engine, "Owl – это когда тебя любят.")  # the store compares normalized texts
    record(engine, "fox – это  когда тебя любят.", channel="telegram")
    text = composer(engine, SEED, ["owl", "fox", "wren"]).compose(["x"])
    assert text == "wren – это когда тебя любят."


def test_it_hands_out_different_texts_within_a_tick_and_then_gives_up(engine):
    maker = composer(engine, SEED, ["owl", "fox", "wren"])
    texts = {maker.compose(["x"]) for _ in range(3)}
    assert len(texts) == 3
    with pytest.raises(ComposeError) as caught:
        maker.compose(["x"])
    assert str(caught.value) == EXHAUSTED


def test_it_remembers_across_a_restart_what_was_posted(sqlite_url):
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    words = ["owl", "fox", "wren", "lark"]
    for _ in range(4):
        text = composer(engine, SEED, words, seed=3).compose(["x", "telegram"])
        record(engine, text)
        engine.dispose()  # as a restarted worker: a new engine, a new composer, the same file
        engine = db.make_engine(sqlite_url)
    with engine.connect() as conn:
        assert sorted(p.text.split(" ")[0] for p in store.recent(conn)) == sorted(words)
    with pytest.raises(ComposeError, match="may be exhausted"):
        composer(engine, SEED, words, seed=3).compose(["x"])
    engine.dispose()


def test_it_lets_a_previewed_text_be_published_but_not_previewed_twice(engine):
    record(engine, "owl – это когда тебя любят.", channel="dry-run")
    record(engine, "fox – это когда тебя любят.", channel="x")
    assert composer(engine, SEED, ["owl", "fox"]).compose(["x"]).startswith("owl ")
    with pytest.raises(ComposeError, match="may be exhausted"):
        composer(engine, SEED, ["owl", "fox"]).compose(["dry-run"])


def test_it_renders_again_instead_of_cutting_a_text_too_long_for_x(engine):
    long_word = "supercalifragilistic" * 15  # 300 characters: no post with it fits X
    maker = composer(engine, "{word}, {word2}!", [long_word, "owl", "fox", "wren"])
    texts = [maker.compose(["x"]) for _ in range(6)]
    for text in texts:
        assert long_word[:20] not in text
        first, second = text.removesuffix("!").split(", ")
        assert {first, second} <= {"owl", "fox", "wren"}  # whole words, never a cut one
    assert len(set(texts)) == 6


def test_it_allows_on_telegram_what_only_x_finds_too_long(engine):
    long_word = "w" * 3000
    maker = composer(engine, "%s", [long_word])
    assert maker.compose(["telegram"]) == long_word
    with pytest.raises(ComposeError) as caught:
        composer(engine, "%s", [long_word]).compose(["x", "telegram"])
    assert str(caught.value) == (
        "could not make a post that fits x and telegram after 50 tries: "
        "every text was too long; shorten the template or the words"
    )


def test_it_reads_the_word_source_once_per_tick(engine):
    maker = composer(engine, SEED, ["owl", "fox", "wren", "lark"])
    for _ in range(4):
        maker.compose(["x"])
    assert maker.source.reads == 1


def test_it_does_not_ask_for_words_a_grammar_never_uses(engine):
    class Unreachable:
        def words(self) -> list[str]:
            raise AssertionError("the word source was read")

    template = parse_template('{"origin": ["#a# #b#"], "a": ["hi", "hello"], "b": ["you", "all"]}')
    maker = Composer(template, Unreachable(), engine, random.Random(1))
    assert len({maker.compose(["x"]) for _ in range(4)}) == 4
    with pytest.raises(ComposeError, match="may be exhausted"):
        maker.compose(["x"])


def test_it_says_so_when_the_source_has_no_words(engine):
    with pytest.raises(ComposeError) as caught:
        composer(engine, SEED, []).compose(["x"])
    assert str(caught.value) == "the word source gave no words, so the template cannot be filled"
