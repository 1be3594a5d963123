"""Bench: composing posts against a full store, and publishing through X, Mastodon and Bluesky.

Each run composes 10,000 posts from a 50,000-word list (read from a file, as POST_WORDS would
be), deduplicated against 100,000 earlier posts already in the store, and prints posts per
second (goal: over 2,000 on SQLite) and memory: the peak RSS of the process and the peak of
Python allocations while composing (tracemalloc, on a separate shorter pass so that tracing does
not slow the timed one).

Then each publisher (X, Mastodon, Bluesky) runs posting ticks end to end against its fake server
(compose, record pending with the claim, publish over loopback HTTP, mark sent) and prints posts
per second and memory: the bytes one publisher holds once it has posted (its client, session,
connection pool), measured with tracemalloc after the modules are imported.

Run: .venv/bin/python bench/posting.py [--database-url URL] [--posts N] [--earlier N] [--words N]
     [--published N] [--only compose|publishers]
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


def publisher_bench(url: str, published: int) -> None:
    """Posts/s end to end and bytes held, per publisher, each against its fake."""
    from steward.config import load_settings
    from steward.posting.bluesky import BlueskyPublisher
    from steward.posting.mastodon import MastodonPublisher
    from steward.posting.poster import Poster
    from steward.posting.x_client import make_client
    from steward.telegram.outbox import Outbox
    from tests.fakes.bluesky_api import FakeBluesky
    from tests.fakes.mastodon_api import FakeMastodon
    from tests.fakes.x_api import FakeX

    per_tick = 10
    words = ",".join(make_words(3000, random.Random(4)))
    with FakeX() as x, FakeMastodon() as masto, FakeBluesky() as sky:
        x.add_user("42", "alice", "42-token", "42-secret")
        masto.add_token("bench-token")
        sky.add_account("alice.bsky.social", "bench-pass")
        nets = {
            "x": {
                "X_CONSUMER_KEY": "ck",
                "X_CONSUMER_SECRET": "cs",
                "X_ACCESS_TOKEN": "42-token",
                "X_ACCESS_SECRET": "42-secret",
                "X_API_URL": x.url,
            },
            "mastodon": {"MASTODON_API_URL": masto.url, "MASTODON_ACCESS_TOKEN": "bench-token"},
            "bluesky": {
                "BLUESKY_HANDLE": "alice.bsky.social",
                "BLUESKY_APP_PASSWORD": "bench-pass",
                "BLUESKY_API_URL": sky.url,
            },
        }
        makers = {
            "x": lambda: make_client("ck", "cs", "42-token", "42-secret", api_url=x.url),
            "mastodon": lambda: MastodonPublisher(masto.url, "bench-token"),
            "bluesky": lambda: BlueskyPublisher(sky.url, "alice.bsky.social", "bench-pass"),
        }
        rows = []
        for name, env in nets.items():
            engine = db.make_engine(url)
            environ = {"POST_WORDS": words, "TWEETS_PER_TICK": str(per_tick), **env}
            settings = load_settings(environ=environ, env_file=None)
            poster = Poster(settings, engine, Outbox(engine, None), db.utcnow)
            at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
            began, sent = time.perf_counter(), 0
            while sent < published:
                at += dt.timedelta(minutes=1)
                sent += sum(o.state == "sent" for o in poster.run_tick(at, want=per_tick))
            rate = sent / (time.perf_counter() - began)
            held = _bytes_held(makers[name], name, x.url)
            rows.append((name, sent, rate, held))
            engine.dispose()
    for name, sent, rate, held in rows:
        print(
            f"{name:9} {sent:,} posts end to end: {rate:,.0f} posts/s, {held / 1024:,.0f} KiB held"
        )


def _bytes_held(make, name: str, x_url: str) -> int:
    """Bytes one publisher keeps after it has posted once (modules already imported)."""
    from steward.posting.publishers import XPublisher

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    made = make()
    publisher = XPublisher(made) if name == "x" else made
    publisher.publish(f"memory probe {uuid.uuid4().hex}", str(random.randrange(10**9)))
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del publisher, made
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="Postgres to use a scratch schema in; default a fresh SQLite file"
    )
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--earlier", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=50_000)
    parser.add_argument("--published", type=int, default=300, help="posts per publisher")
    parser.add_argument("--only", choices=("compose", "publishers"))
    args = parser.parse_args()
    if args.only == "publishers":
        with tempfile.TemporaryDirectory() as tmp, scratch_store(args.database_url, tmp) as url:
            engine = db.make_engine(url)
            db.upgrade(engine)
            engine.dispose()
            publisher_bench(url, args.published)
        return

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
        engine.dispose()
        if args.only != "compose":
            publisher_bench(url, args.published)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the whole bench: {peak_rss:.0f} MiB")


if __name__ == "__main__":
    main()
