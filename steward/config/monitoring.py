"""Which checks run, how often, and how long their samples are kept."""

from __future__ import annotations

from steward.config.fields import SettingsPart, env


class MonitoringSettings(SettingsPart):
    checks: str | None = env(
        "CHECKS",
        expect="checks like `api=https://example.com/health` or a JSON list",
        default=None,
        description="Monitoring checks (compact form or JSON).",
    )
    checks_file: str | None = env(
        "CHECKS_FILE",
        expect="a path to a .toml or .json file of checks",
        default=None,
        description="Monitoring checks from a TOML or JSON file.",
    )
    check_interval: int = env(
        "CHECK_INTERVAL",
        expect="seconds as a whole number, e.g. 60",
        default=60,
        ge=5,
        description="Default seconds between runs of a check.",
    )
    checks_allow_private: bool = env(
        "CHECKS_ALLOW_PRIVATE",
        expect="true or false",
        default=False,
        description="Let /watch add link-local and cloud-metadata targets (CHECKS always may).",
    )
    samples_retention_days: int = env(
        "SAMPLES_RETENTION_DAYS",
        expect="days as a whole number, e.g. 30",
        default=30,
        ge=1,
        description="Days raw check samples are kept (hourly rollups stay longer).",
    )
