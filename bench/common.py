"""Helpers shared by the benchmarks: start a bot process, wait for a line, read its memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], ready: str, cwd: Path, timeout: float = 60):
    """Start a process; return (process, seconds until a stdout line containing `ready`)."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = began + timeout
    while time.perf_counter() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{args} exited with {proc.wait()} before it was ready")
        if ready in line:
            return proc, time.perf_counter() - began
    proc.kill()
    raise RuntimeError(f"{args} was not ready within {timeout}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pss_mb(pid: int) -> float:
    """Proportional set size: pages shared with other processes (a fork's parent) counted by
    share, so the memory of a process pool adds up to what the machine really spends."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(header, widths, strict=False))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(lines)


def http_target(*, slow_seconds: float = 0.0, host: str = "127.0.0.1") -> str:
    """The source of a tiny keep-alive HTTP server (run it with `python -c`; it prints its
    port): every request gets 200 "ok", those for /slow after `slow_seconds`. On 0.0.0.0 it
    takes every 127.x.y.z, so a thousand targets can be distinct origins on one socket."""
    return TARGET_SERVER.replace("SLOW_SECONDS", repr(slow_seconds)).replace("HOST", repr(host))


TARGET_SERVER = r"""
import asyncio

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            if SLOW_SECONDS and b" /slow" in head.split(b"\r\n", 1)[0]:
                asyncio.get_running_loop().call_later(SLOW_SECONDS, self._answer)
            else:
                self._answer()

    def _answer(self):
        if not self.transport.is_closing():
            self.transport.write(OK)

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, HOST, 0, backlog=4096, reuse_address=True)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
