"""Monitoring: periodic checks (http, tcp, evm_lag, python), samples, alerts and charts.

Map: spec.py parses CHECKS; checks.py runs them; alerts.py is the alert state machine;
store.py keeps samples, rollups, alert states and watched checks; watched.py runs the checks
added with /watch, and dialogs.py is the /watch and /unwatch conversation; messages.py and
charts.py say and draw; job.py is the scheduled tick; commands.py the Telegram commands;
cli.py `python bot.py check`.
"""

from steward.monitoring.options import ChecksError

__all__ = ["ChecksError"]
