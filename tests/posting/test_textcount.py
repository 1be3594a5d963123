"""Post length: X's weighted count (twitter-text v3) and Telegram's UTF-16 count."""

from __future__ import annotations

import pytest

from steward.posting.textcount import fits, graphemes, telegram_length, url_spans, x_length

LONG_URL = "https://example.com/" + "path/" * 40


def test_it_counts_latin_and_cyrillic_as_one_and_cuts_at_280():
    assert x_length("a" * 280) == 280
    assert fits("a" * 280, "x")
    assert not fits("a" * 281, "x")
    assert fits("я" * 280, "x")
    assert not fits("я" * 281, "x")


def test_it_counts_cjk_as_two():
    assert x_length("日本語") == 6
    assert fits("日" * 140, "x")
    assert not fits("日" * 141, "x")


def test_it_counts_any_emoji_as_two_however_many_code_points():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    for emoji in ["😀", family, "🇺🇦", "👍🏽", "1️⃣", "❤️"]:
        assert x_length(emoji) == 2, emoji
    assert fits(family * 140, "x")
    assert not fits(family * 141, "x")
    assert x_length("hi 😀 there") == 11


def test_it_counts_a_url_as_23_whatever_its_length():
    assert len(LONG_URL) > 23
    assert x_length(LONG_URL) == 23
    assert x_length("http://a.co") == 23
    assert x_length(f"see {LONG_URL}.") == 4 + 23 + 1
    assert x_length("visit example.com today") == 6 + 23 + 6
    text = "a" * 256 + " " + LONG_URL
    assert x_length(text) == 280 and fits(text, "x")
    assert not fits("a" + text, "x")


def test_it_does_not_take_emails_file_names_or_mentions_for_urls():
    assert url_spans("write to user@example.com") == []
    assert url_spans("run setup.py now") == []
    assert url_spans("a www.bbc.co.uk b") == [(2, 15)]
    assert url_spans("x.ru/abc and news.example.ru") == [(0, 8), (13, 28)]


def test_it_normalizes_to_nfc_before_counting():
    assert x_length("e\u0301" * 280) == 280
    assert fits("e\u0301" * 280, "x")


def test_it_refuses_characters_x_refuses_and_blank_text():
    assert not fits("hello\ufeff", "x")
    assert not fits("   ", "x")
    assert not fits("", "telegram")


def test_it_counts_telegram_text_in_utf16_units_up_to_4096():
    assert telegram_length("😀") == 2
    assert telegram_length("日本") == 2
    assert fits("a" * 4096, "telegram")
    assert not fits("a" * 4097, "telegram")
    assert fits("😀" * 2048, "telegram")
    assert not fits("😀" * 2049, "telegram")


def test_it_holds_a_dry_run_to_xs_rule_and_rejects_unknown_channels():
    assert fits("a" * 280, "dry-run")
    assert not fits("a" * 281, "dry-run")
    with pytest.raises(ValueError, match="unknown channel 'myspace'"):
        fits("hi", "myspace")


def test_mastodon_counts_a_link_as_23_and_bluesky_counts_graphemes():
    link = "https://example.com/" + "a" * 100
    assert fits("x" * 476 + " " + link, "mastodon") and not fits("x" * 478 + " " + link, "mastodon")
    family, flag, accent = "👨\u200d👩\u200d👧", "🇫🇷", "e\u0301"
    assert graphemes(family + flag + accent) == 3
    assert fits(family * 300, "bluesky") and not fits(family * 301, "bluesky")
