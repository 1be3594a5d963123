"""The training watcher: every few seconds, turn what runs wrote to the store into messages.

It lives in the worker, outside the training processes, which is why it can report a run that
was SIGKILLed, OOM-killed or lost with its machine: such a run simply stops reporting and misses
its deadline. One tick, for each run still worth watching:
1. a run silent past its deadline (TRAINING_STALL_AFTER, or what it promised with expect())
   is marked stalled;
2. a new run gets its one live message, later edited in place at most every
   TRAINING_UPDATE_EVERY seconds while there is news;
3. new loss values are checked: NaN or infinity alerts at once (once per metric), a spike far
   above the recent median alerts too (at most every SPIKE_QUIET per metric);
4. a change of state is announced: stalled (urgent), reporting again (as a reply), or the end:
   a final report with the run's chart, the crash's exception and traceback tail;
5. what runs answered to /stop, /setlr, /save and /cmd goes back to whoever asked.
Every message is written to the outbox in the same transaction as the conditional update that
claims it (bookkeeping.py), so neither a restart nor a second worker says anything twice.
On Postgres steps 2-4 of each run are a unit of work the workers share (shared.py); the tick
then only sweeps: stalls, lost runs, answers, and a unit for each run worth watching.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from typing import Any

import sqlalchemy as sa

from steward.features import Feature, Job, Services
from steward.timeutil import human
from steward.training import bookkeeping, charts, health, messages, shared, store

log = logging.getLogger("steward.training")
WATCH_EVERY = dt.timedelta(seconds=5)
SPIKE_QUIET = dt.timedelta(minutes=30)
ENDED = ("finished", "stopped", "crashed", "lost")
NEVER_READ = "the run ended before it read this command"
NEVER_READ_LOST = "the run was lost before it read this command"


class Watcher:
    def __init__(self, services: Services, *, shares_runs: bool = False) -> None:
        settings = services.settings
        self.engine = services.engine
        self.outbox = services.outbox
        self.clock = services.clock
        self.store_health = services.store_health
        self.tz = settings.tz
        self.update_every = dt.timedelta(seconds=settings.training_update_every)
        self.stall_after = dt.timedelta(seconds=settings.training_stall_after)
        self.lost_after = dt.timedelta(seconds=settings.training_lost_after)
        # The client's thread reaching the store this recently means its process is alive.
        self.alive_within = min(self.stall_after / 2, dt.timedelta(seconds=60))
        # True on Postgres: each run's watch is claimed by one worker (shared.py), not done here.
        self.shares_runs = shares_runs

    async def tick(self, scheduled_at: dt.datetime | None = None) -> int:
        return await asyncio.to_thread(self.watch_once)

    def watch_once(self) -> int:
        """One pass over the runs (blocking); returns how many messages it queued."""
        now = self.clock()
        self._mark_stalls(now)
        with self.engine.connect() as conn:
            rows = bookkeeping.runs_to_watch(conn)
        said = 0
        if self.shares_runs:
            with self.engine.begin() as conn:
                shared.ensure_units(conn, [run.id for run in rows], now)
            rows = []
        for run in rows:
            try:
                said += self.watch_run(run.id, now)
            except Exception:  # one run's bad data must not silence the others
                log.exception("watching training run %d failed", run.id)
        said += self._report_outcomes(now)
        if said:
            self.outbox.wake()
        return said

    def _mark_stalls(self, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            for run in store.overdue_runs(conn, now, self.stall_after):
                if store.mark_stalled(conn, run.id, run.last_heartbeat_at):
                    log.warning("training run %d (%s) stalled", run.id, run.name)
        with self.engine.begin() as conn:
            for run_id in store.mark_lost(conn, now, self.lost_after):
                log.warning("training run %d is lost: silent for %s", run_id, self.lost_after)

    def watch_run(self, run_id: int, now: dt.datetime) -> int:
        """One run's alerts, live message and change of state; how many messages it queued."""
        said = self._send_alerts(self._read(run_id))
        said += self._check_health(self._read(run_id))
        said += self._live(self._read(run_id), now)
        run = self._read(run_id)
        if run.state != run.notified_state:
            said += self._announce_state(run, now)
        return said

    def _read(self, run_id: int) -> Any:
        with self.engine.connect() as conn:
            return store.get_run(conn, run_id)

    # -- 2. the live message -----------------------------------------------------------------

    def _live(self, run: Any, now: dt.datetime) -> int:
        if run.state not in store.ACTIVE:
            return 0
        key = live_key(run.id)
        with self.engine.begin() as conn:
            if run.progress_key is None:
                if not bookkeeping.claim_live_message(conn, run.id, key, now):
                    return 0
                text = messages.render_live(run, store.latest_metrics(conn, run.id), now, self.tz)
                self.outbox.notify_in(conn, text, key=key)
                log.info("training run %d (%s) started on %s", run.id, run.name, run.host)
                return 1
            due = run.progress_sent_at is None or now - run.progress_sent_at >= self.update_every
            since = run.progress_sent_at or run.started_at
            if not due or not bookkeeping.news_since(conn, run, since):
                return 0
            if not bookkeeping.claim_live_edit(conn, run, now):
                return 0
            text = messages.render_live(run, store.latest_metrics(conn, run.id), now, self.tz)
            self.outbox.notify_in(conn, text, edit=key, key=f"{key}@{now.isoformat()}")
        return 1

    # -- 3. NaN and spikes -------------------------------------------------------------------

    def _check_health(self, run: Any) -> int:
        rules = _rules(run)
        with self.engine.connect() as conn:
            rows, cursor = bookkeeping.unchecked_losses(conn, run, [r.metric for r in rules])
            if cursor is None:
                return 0
            history = {
                name: bookkeeping.history_before(
                    conn, run.id, name, rows[0].id, health.SPIKE_WINDOW
                )
                for name in {r.name for r in rows}
            }
        points = [(r.name, r.step, r.value) for r in rows]
        notes = dict(run.health or {})
        ruled = health.check_rules(rules, copy.deepcopy(history), points, notes)
        findings = health.scan(history, points)
        alerts = [f for f in findings if _first_time(notes, f, self.clock())] + ruled
        with self.engine.begin() as conn:
            if not bookkeeping.advance_check(conn, run, cursor, notes):
                return 0
            for finding in alerts:
                text = messages.render_finding(run, finding)
                key = f"training:{run.id}:{finding.kind}:{finding.metric}:{finding.step}"
                self.outbox.notify_in(conn, text, key=key, urgent=finding.kind == "nan")
                log.warning("training run %d: %s in %s", run.id, finding.kind, finding.metric)
        return len(alerts)

    def _send_alerts(self, run: Any) -> int:
        """The script's own run.alert() messages, each once (a cursor kept in run.health)."""
        notes = dict(run.health or {})
        with self.engine.connect() as conn:
            rows = store.alerts_after(conn, run.id, notes.get("alert_event", 0))
        if not rows:
            return 0
        notes["alert_event"] = rows[-1].id
        with self.engine.begin() as conn:
            bookkeeping.save_health(conn, run, notes)
            for row in rows:
                level = row.level.partition(":")[2]
                text = messages.render_alert(run, level, row.message)
                key = f"training:{run.id}:alert:{row.id}"
                self.outbox.notify_in(conn, text, key=key, urgent=level == "error")
        return len(rows)

    # -- 4. changes of state -----------------------------------------------------------------

    def _announce_state(self, run: Any, now: dt.datetime) -> int:
        notes = dict(run.health or {})
        if run.state in ENDED:
            return self._announce_end(run, now, notes)
        outgoing: list[dict] = []
        if run.state == "stalled":
            key = f"training:{run.id}:stalled:{run.last_heartbeat_at.isoformat()}"
            notes.update(stall_key=key, silent_since=run.last_heartbeat_at.isoformat())
            alive = run.last_seen_at is not None and now - run.last_seen_at < self.alive_within
            text = messages.render_stalled(run, now, alive)
            outgoing.append(dict(text=text, key=key, urgent=True))
        elif run.notified_state in ("stalled", "lost"):  # running again
            since = notes.pop("silent_since", None)
            silent = run.last_heartbeat_at - dt.datetime.fromisoformat(since) if since else None
            key = f"{notes.get('stall_key', f'training:{run.id}')}:back"
            text = messages.render_back(run, silent)
            outgoing.append(dict(text=text, key=key, reply_to=notes.get("stall_key")))
            log.info("training run %d is reporting again", run.id)
        return self._claim_and_send(run, notes, outgoing, now)

    def _announce_end(self, run: Any, now: dt.datetime, notes: dict) -> int:
        with self.engine.connect() as conn:
            latest = store.latest_metrics(conn, run.id)
            series = store.series(conn, run.id)
        bests = {
            name: b
            for name, (steps, values) in series.items()
            if (b := health.best(name, steps, values)) is not None
        }
        caption = messages.render_final(run, latest, bests, self.tz)
        photo = self._chart(run)
        urgent = run.state in ("crashed", "lost")
        end = dict(key=f"training:{run.id}:end", urgent=urgent)
        if photo is not None:
            end.update(photo=photo, caption=caption)
        else:
            end.update(text=caption)
        # A caption over 1024 characters (a long traceback) is cut by the outbox, the rest sent
        # as a text right after the photo.
        outgoing = [end]
        log.info("training run %d (%s) %s after %s", run.id, run.name, run.state, _took(run))
        return self._claim_and_send(run, notes, outgoing, now, ended=True)

    def _chart(self, run: Any) -> bytes | None:
        try:
            return charts.render(self.engine, run)
        except Exception:  # the report matters more than its picture
            log.exception("could not draw the chart of training run %d", run.id)
            return None

    def _claim_and_send(
        self, run: Any, notes: dict, outgoing: list[dict], now: dt.datetime, ended: bool = False
    ) -> int:
        with self.engine.begin() as conn:
            if not bookkeeping.claim_state(conn, run, notes):
                return 0
            count = len(outgoing)
            if run.progress_key is not None and outgoing:
                # The live message shows the new state too (an edit makes no sound).
                fresh = store.get_run(conn, run.id)
                text = messages.render_live(fresh, store.latest_metrics(conn, run.id), now, self.tz)
                key = f"{run.progress_key}:{run.state}:{run.last_heartbeat_at.isoformat()}"
                self.outbox.notify_in(conn, text, edit=run.progress_key, key=key)
                count += 1
            for message in outgoing:
                self.outbox.notify_in(conn, message.pop("text", None), **message)
            if ended:
                count += self._never_read(conn, run, now)
        return count

    def _never_read(self, conn: sa.Connection, run: Any, now: dt.datetime) -> int:
        said = 0
        for cmd in bookkeeping.unanswered_commands(conn, run.id):
            if bookkeeping.claim_report(conn, cmd.id, now):
                why = NEVER_READ_LOST if run.state == "lost" else NEVER_READ
                text = messages.render_outcome(run.name, run.id, cmd.kind, False, why)
                chat = cmd.chat_id or None
                self.outbox.notify_in(conn, text, chat_id=chat, key=f"training:cmd:{cmd.id}")
                said += 1
        return said

    # -- 5. answers to commands --------------------------------------------------------------

    def _report_outcomes(self, now: dt.datetime) -> int:
        said = 0
        with self.engine.connect() as conn:
            rows = bookkeeping.unreported_outcomes(conn)
        for cmd in rows:
            with self.engine.begin() as conn:
                if not bookkeeping.claim_report(conn, cmd.id, now):
                    continue
                text = messages.render_outcome(
                    cmd.run_name, cmd.run_id, cmd.kind, cmd.ok, cmd.message or ""
                )
                chat = cmd.chat_id or None
                self.outbox.notify_in(conn, text, chat_id=chat, key=f"training:cmd:{cmd.id}")
            said += 1
        return said

    # -- status ------------------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        with self.engine.connect() as conn:
            active = bookkeeping.active_runs(conn)
            total = conn.scalar(sa.select(sa.func.count()).select_from(store.runs))
            last = store.recent_runs(conn, 1)
        running = [r for r in active if r.state == "running"]
        stalled = [r for r in active if r.state == "stalled"]
        line = f"training: {len(running)} running"
        if running:
            line += " (" + ", ".join(f"{r.id} {r.name}" for r in running[:5]) + ")"
        if stalled:
            line += f", {len(stalled)} stalled (" + ", ".join(str(r.id) for r in stalled) + ")"
        line += f", {total} run{'' if total == 1 else 's'} in the store"
        if last and not active:
            line += f"; the last, {last[0].id} {last[0].name}, {last[0].state}"
        return [line]


def _rules(run: Any) -> list[health.Rule]:
    try:
        return health.parse_rules(run.alerts)
    except ValueError:  # the client refuses bad rules; a hand-edited row must not stop the watch
        log.warning("training run %d has an unreadable alert rule: %r", run.id, run.alerts)
        return []


def live_key(run_id: int) -> str:
    return f"training:{run_id}:live"


def _first_time(notes: dict, finding: health.Finding, now: dt.datetime) -> bool:
    """Whether to alert for this finding, recording it in `notes` when so."""
    if finding.kind == "nan":
        said = notes.setdefault("nan", [])
        if finding.metric in said:
            return False
        said.append(finding.metric)
        return True
    last = notes.setdefault("spike", {}).get(finding.metric)
    if last is not None and now - dt.datetime.fromisoformat(last) < SPIKE_QUIET:
        return False
    notes["spike"][finding.metric] = now.isoformat()
    return True


def _took(run: Any) -> str:
    return human((run.ended_at or run.last_heartbeat_at) - run.started_at)


def build_feature(services: Services) -> Feature:
    from steward.training import commands, dialogs

    # On Postgres each run's watch is a unit of work any worker claims (shared.py), so N workers
    # split the runs; on SQLite the one worker's tick watches them all.
    on_postgres = services.engine.dialect.name == "postgresql"
    watcher = Watcher(services, shares_runs=on_postgres)
    runs = shared.SharedRuns(watcher, every=WATCH_EVERY) if on_postgres else None

    def status() -> list[str]:
        lines = watcher.status_lines()
        if runs is not None:
            lines.append(f"runs shared with the other workers: this one watched {runs.done}")
        return lines

    summary = (
        f"watching runs in the store every {human(WATCH_EVERY)}: progress edits every "
        f"{human(watcher.update_every)}, stalled after {human(watcher.stall_after)} of silence, "
        f"lost after {human(watcher.lost_after)}"
    )
    # Always on: runs report through the store from any machine, whatever else is configured.
    return Feature(
        "training",
        True,
        summary,
        commands=commands.build(services),
        jobs=[Job("training.watch", WATCH_EVERY, watcher.tick)],
        dialogs=dialogs.build_dialogs(services),
        start=runs.start if runs is not None else None,
        stop=runs.stop if runs is not None else None,
        status=status,
    )
