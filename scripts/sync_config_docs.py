"""Rewrite the config-var table in README.md, `.env.example` and app.json's `env` from Settings.

Run after adding a variable to its feature's model in steward/config/:
`python scripts/sync_config_docs.py`.
tests/test_docs.py fails when the three drift from Settings.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from steward.config import variables  # noqa: E402

# Set by the platform itself (the Postgres add-on, the web dyno): documented in README and
# .env.example, but not asked for in app.json, where Heroku fills them in.
PLATFORM_SET = {"DATABASE_URL", "PORT"}
# Values a deploy button should generate instead of asking for.
GENERATED = {"WEBHOOK_SECRET"}


def _default(doc) -> str:
    value = doc["default"]
    if value is None or value == ():
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def readme_table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, doc in variables().items():
        default = f"`{_default(doc)}`" if _default(doc) else "—"
        rows.append(f"| `{name}` | {default} | {doc['description']} |")
    return "\n".join(rows)


def env_example() -> str:
    lines = [
        "# Copy to .env for local runs (`heroku local`, python-dotenv and `docker --env-file`",
        "# all read this form). A real environment variable always wins over .env.",
        "# Every line is optional: with none set, the worker runs in log-only dry-run mode.",
    ]
    for name, doc in variables().items():
        lines.append(f"\n# {doc['description']} Expected: {doc['expect']}.")
        lines.append(f"{name}={_default(doc) if not doc['secret'] else ''}")
    return "\n".join(lines) + "\n"


def app_env() -> dict:
    env = {}
    for name, doc in variables().items():
        if name in PLATFORM_SET:
            continue
        entry = {"description": doc["description"], "required": False}
        if name in GENERATED:
            entry["generator"] = "secret"
        elif _default(doc):
            entry["value"] = _default(doc)
        env[name] = entry
    return env


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    text = re.sub(
        r"(<!-- config-table:start -->\n).*?(<!-- config-table:end -->)",
        lambda m: m.group(1) + readme_table() + "\n" + m.group(2),
        text,
        flags=re.S,
    )
    readme.write_text(text)
    (ROOT / ".env.example").write_text(env_example())
    app_path = ROOT / "app.json"
    app = json.loads(app_path.read_text())
    app["env"] = app_env()
    app_path.write_text(json.dumps(app, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
