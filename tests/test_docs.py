"""The public face stays true: every config var documented in README, .env.example and app.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dotenv import dotenv_values

from steward.cli import COMMANDS
from steward.config import variables

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_SET = {"DATABASE_URL", "PORT"}  # Heroku sets these itself (add-on, web dyno)


def test_readme_documents_exactly_the_config_vars():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- config-table:start -->")[1].split("<!-- config-table:end -->")[0]
    documented = re.findall(r"^\| `([A-Z_0-9]+)` \|", table, flags=re.M)
    assert documented == list(variables()), "run `make docs` (scripts/sync_config_docs.py)"


def test_env_example_lists_every_var_in_a_form_dotenv_reads():
    values = dotenv_values(ROOT / ".env.example")
    assert list(values) == list(variables())
    for line in (ROOT / ".env.example").read_text().splitlines():
        assert not line or line.startswith("#") or re.fullmatch(r"[A-Z_0-9]+=\S*", line), line


def test_app_json_is_valid_and_its_env_keys_are_the_documented_vars():
    app = json.loads((ROOT / "app.json").read_text())
    assert set(app["env"]) == set(variables()) - PLATFORM_SET
    for name, entry in app["env"].items():
        assert entry["description"] and entry["required"] is False, name
    assert app["env"]["WEBHOOK_SECRET"]["generator"] == "secret"
    assert app["formation"]["worker"] == {"quantity": 1, "size": "basic"}
    assert {"plan": "heroku-postgresql:essential-0"} in app["addons"]
    assert app["name"] and app["description"] and app["repository"] and app["keywords"]


def test_readme_starts_with_the_run_and_test_commands():
    head = (ROOT / "README.md").read_text().split("## ")[0]
    commands = re.findall(r"```sh\n(.+?)\n```", head)
    assert len(commands) >= 2
    assert "pip install -r requirements.txt" in commands[0] and "bot.py" in commands[0]
    assert "requirements-dev.txt" in commands[1] and "pytest" in commands[1]


def test_readme_mentions_every_subcommand():
    readme = (ROOT / "README.md").read_text()
    for name in COMMANDS:
        if name != "worker":
            assert f"python bot.py {name}" in readme, name


def test_deploy_files_say_what_heroku_needs():
    procfile = (ROOT / "Procfile").read_text().splitlines()
    assert "worker: python bot.py" in procfile
    assert "release: python bot.py migrate" in procfile
    assert (ROOT / "runtime.txt").read_text().strip() == "python-3.13"
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert "==" in line, f"requirements.txt pins every dependency: {line}"
