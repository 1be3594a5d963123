"""A training machine installs the package alone (its core dependencies): no bot libraries."""

from __future__ import annotations

import re
import tomllib

from tests.training.conftest import ROOT

# The import name of each distribution the worker needs and the training client must not.
WORKER_MODULES = {
    "python-telegram-bot": "telegram",
    "tweepy": "tweepy",
    "apscheduler": "apscheduler",
    "pydantic-settings": "pydantic_settings",
    "python-dotenv": "dotenv",
    "matplotlib": "matplotlib",
    "httpx": "httpx",
    "feedparser": "feedparser",
    "cryptography": "cryptography",
}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()


def test_the_core_dependencies_are_the_clients_and_the_worker_is_an_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    worker = {_name(r) for r in project["optional-dependencies"]["worker"]}
    assert core == {"sqlalchemy", "alembic"}
    # Every worker-only library is blocked by the import test below.
    assert worker - core - {"psycopg"} == set(WORKER_MODULES)


def test_a_run_reports_with_the_worker_libraries_unimportable(tmp_path, script):
    """The client registers, creates its tables on a fresh SQLite file, logs and ends without
    python-telegram-bot, tweepy, APScheduler or any other worker-only library."""
    blocked = sorted(WORKER_MODULES.values())
    proc = script(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        from steward.training import Run

        with Run("slim", {{"lr": 0.1}}, database_url="sqlite:///{tmp_path}/runs.sqlite") as run:
            for step in range(3):
                run.log(step=step, loss=1.0 / (step + 1))
            run.progress(3, 3, "epoch 1", unit="batches")
            assert run.flush(), "the store took nothing"
        loaded = sorted(m for m in {blocked!r} if m in sys.modules)
        print("ok", run.id, loaded)
        """
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "ok 1 []"
