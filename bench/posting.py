"""Bench: composing posts against a full store, for a Tracery grammar and a printf template.

Each run composes 10,000 posts from a 50,000-word list (read from a file, as POST_WORDS would
be), deduplicated against 100,000 earlier posts already in the store, and prints posts per
second (goal: over 2,000 on SQLite) and memory: the peak RSS of the process and the peak of
Python allocations while composing (tracemalloc, on a separate shorter pass so that tracing does
not slow the timed one).

Run: .venv/bin/python bench/posting.py [--database-url URL] [--posts N] [--earlier N] [--words N]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from steward import db
from steward.posting import store
from steward.posting.compose import Composer
from steward.posting.sources import WordListSource
from steward.posting.templates import WordPicker, parse_template

GRAMMAR = json.dumps(
    {
        "origin": ["#intro# #thing.a# #verb.s# #place#.", "[w:#word#]#w.capitalize#: #tail#"],
        "intro": ["Today", "Somewhere", "Quietly", "Again", "At last"],
        "thing": ["#word#", "#adj# #word#"],
        "adj": ["small", "bright", "old", "gentle", "odd", "quiet"],
        "verb": ["sing", "wait", "wander", "glow", "rest", "hum"],
        "place": ["by the sea", "in the #word#", "under #word.s#", "at home"],
        "tail": ["#w# is when someone loves you", "more #w.s#, fewer #word.s#"],
    }
)
PRINTF = "%s – это когда тебя любят, а %s подождёт."
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["ra", "lo", "mi", "sa"]


@contextlib.contextmanager
def scratch_store(database_url: str | None, tmp: str) -> Iterator[str]:
    """A fresh SQLite file, or a schema of its own in the given Postgres, dropped afterwards."""
    if not database_url:
        yield f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = db.make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = db.normalize_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def make_words(n: int, rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < n:
        words["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


def fill_store(engine: sa.Engine, templates: list, picker: WordPicker, n: int) -> None:
    """`n` earlier posts made by the same templates and words, so some renders are repeats."""
    rng = random.Random(7)
    now = db.utcnow()
    rows, seen = [], set()
    while len(rows) < n:
        text = templates[len(rows) % len(templates)].render(picker, rng)
        digest = store.text_hash(text)
        if digest in seen:
            continue
        seen.add(digest)
        rows.append(
            {
                "text": text,
                "text_hash": digest,
                "channel": "x",
                "state": "sent",
                "created_at": now - dt.timedelta(minutes=len(rows)),
                "sent_at": now,
            }
        )
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(sa.insert(store.posts), rows[i : i + 5000])


def run(engine: sa.Engine, template, source, posts: int) -> tuple[float, int]:
    composer = Composer(template, source, engine, random.Random(1))
    composer.picker()  # reading the word file is the tick's start-up, not per post
    began = time.perf_counter()
    for _ in range(posts):
        composer.compose(["x", "telegram"])
    rate = posts / (time.perf_counter() - began)
    tracemalloc.start()
    traced = Composer(template, source, engine, random.Random(2))
    for _ in range(min(posts, 2000)):
        traced.compose(["x", "telegram"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return rate, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="Postgres to use a scratch schema in; default a fresh SQLite file"
    )
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--earlier", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=50_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, scratch_store(args.database_url, tmp) as url:
        engine = db.make_engine(url)
        db.upgrade(engine)
        words_file = Path(tmp) / "words.txt"
        words_file.write_text("\n".join(make_words(args.words, random.Random(3))))
        source = WordListSource(str(words_file))
        picker = WordPicker(source.words())
        kinds = {"tracery": parse_template(GRAMMAR), "printf": parse_template(PRINTF)}

        began = time.perf_counter()
        fill_store(engine, list(kinds.values()), picker, args.earlier)
        print(
            f"store: {db.describe(engine)}, {args.earlier:,} earlier posts "
            f"({time.perf_counter() - began:.1f}s to write), {args.words:,} words"
        )
        for kind, template in kinds.items():
            rate, peak = run(engine, template, source, args.posts)
            verdict = "ok" if rate > 2000 else "BELOW GOAL"
            print(
                f"{kind:8} {args.posts:,} posts: {rate:,.0f} posts/s ({verdict}: goal 2,000), "
                f"composing peak {peak / 2**20:.1f} MiB traced"
            )
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the whole bench: {peak_rss:.0f} MiB")
        engine.dispose()


if __name__ == "__main__":
    main()
