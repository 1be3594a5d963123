"""`python bot.py` workers sharing a farm: each bot's tick runs once, on one of them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.worker_process import ROOT, WorkerProcess, clean_env

TICK = re.compile(r"farm: bot (\w+): tick of (\S+): 1 sent")


@pytest.mark.slow
def test_two_workers_share_the_farm_and_run_each_bots_tick_once(pg_url, tmp_path):
    env = clean_env(DATABASE_URL=pg_url)
    subprocess.run([sys.executable, str(ROOT / "bot.py"), "migrate"], env=env, check=True)
    names = [f"b{i}" for i in range(8)]
    spec = {"template": "%s!", "words": "owls,bats,moths", "targets": ["dry-run"]}
    farm = {"format": "steward-farm/1", "bots": [spec | {"name": n} for n in names]}
    (tmp_path / "farm.json").write_text(json.dumps(farm))
    args = [sys.executable, str(ROOT / "bot.py"), "bots", "import", "farm.json"]
    assert subprocess.run(args, env=env, cwd=tmp_path).returncode == 0
    with WorkerProcess(env, tmp_path) as one, WorkerProcess(env, tmp_path) as two:
        one.wait_ready()
        two.wait_ready()
        ticks: list[tuple[str, str]] = []
        for _ in names:
            ticks.append(_next_tick(one, two, set(ticks)))
        assert sorted(n for n, _ in ticks) == names
        one.terminate()
        two.terminate()
        output = one.output + "\n" + two.output
    all_ticks = TICK.findall(output)
    assert sorted(all_ticks) == sorted(ticks)  # none twice, on either worker
    assert "Traceback" not in output


def _next_tick(one: WorkerProcess, two: WorkerProcess, seen: set) -> tuple[str, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for found in TICK.findall(one.output + "\n" + two.output):
            if found not in seen:
                return found
        time.sleep(0.1)
    raise AssertionError("no new farm tick within 60 s:\n" + one.output + "\n" + two.output)


@pytest.mark.slow
def test_a_bots_tokens_never_reach_the_log_even_at_debug(tmp_path, fake, key):
    fake.add_user("7", "poet", "7-tokenvalue-abcdef", "7-secretvalue-abcdef")
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'store.sqlite'}",
        STEWARD_SECRET_KEY=key,
        X_CONSUMER_KEY="ck",
        X_CONSUMER_SECRET="cs",
        X_API_URL=fake.url,
        LOG_LEVEL="DEBUG",
    )
    farm = {
        "format": "steward-farm/1",
        "bots": [
            {
                "name": "poet",
                "template": "%s at dusk.",
                "words": "owls,bats,moths",
                "targets": ["x"],
                "secrets": {
                    "x_access_token": "7-tokenvalue-abcdef",
                    "x_access_secret": "7-secretvalue-abcdef",
                },
            }
        ],
    }
    (tmp_path / "farm.json").write_text(json.dumps(farm))
    imported = subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "bots", "import", "farm.json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_for(r"farm: bot poet: tick of \S+: 1 sent", timeout=60)
        worker.terminate()
        output = worker.output
    assert len(fake.posts) == 1
    assert "tokenvalue" not in output and "secretvalue" not in output
