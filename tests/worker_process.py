"""Runs `python bot.py` as a subprocess, as a user would, and watches its log lines."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def clean_env(**values: str) -> dict[str, str]:
    """Only what a fresh shell has, plus the given variables (no developer config leaks in)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


class WorkerProcess:
    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.env, self.cwd, self.args = env, cwd, args
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bot.py"), *self.args],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        """Wait for a log line matching `pattern` (a regex); returns it."""
        regex = re.compile(pattern)
        for line in self.lines:
            if regex.search(line):
                return line
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self._new.empty():
                    break
                continue
            if regex.search(line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n{self.output}")

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.wait_for(r"steward .* ready", timeout)

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds it took to exit)."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=timeout)
        return status, time.monotonic() - began

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
        # The reader ends at EOF; closing the pipe after it keeps ResourceWarnings (errors in
        # this suite) away.
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
