"""What the training machine looks like now: host memory, the process's memory, GPUs.

Sampled by the client's background thread every SAMPLE_EVERY seconds (never the loop), stored
with the run and shown in its live message and in stall and crash reports, so that an OOM kill
can be recognised. GPUs are read through pynvml when installed (memory and utilisation), else
through torch.cuda when the script already imported torch and initialised CUDA (memory only).
Reads /proc on Linux; elsewhere only the GPU part is filled in.
"""

from __future__ import annotations

import sys
from typing import Any

SAMPLE_EVERY = 120.0
GIB = 2**30


def _meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0]) * 1024
    return out


def _process_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _gpus_nvml() -> list[dict[str, Any]] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            busy = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            gpus.append({"used": int(memory.used), "total": int(memory.total), "util": int(busy)})
        return gpus
    except Exception:  # no driver, no device: not this run's problem
        return None


def _gpus_torch() -> list[dict[str, Any]] | None:
    torch = sys.modules.get("torch")  # only when the script imported it: never import torch
    try:
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        gpus = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            gpus.append({"used": int(total - free), "total": int(total)})
        return gpus
    except Exception:
        return None


def sample() -> dict[str, Any]:
    """A snapshot as JSON-ready numbers (bytes, percent); missing parts are left out."""
    out: dict[str, Any] = {}
    try:
        info = _meminfo()
        out["ram_used"] = info["MemTotal"] - info.get("MemAvailable", info.get("MemFree", 0))
        out["ram_total"] = info["MemTotal"]
        out["rss"] = _process_rss()
    except (OSError, KeyError, ValueError, IndexError):
        pass
    gpus = _gpus_nvml()
    if gpus is None:
        gpus = _gpus_torch()
    if gpus:
        out["gpus"] = gpus
    return out


def describe(snapshot: dict[str, Any] | None) -> str | None:
    """`RAM 41/64 GiB (this process 12 GiB) · GPU0 22/24 GiB 97%` or None."""
    if not snapshot:
        return None
    parts = []
    if "ram_total" in snapshot:
        ram = f"RAM {snapshot['ram_used'] / GIB:.1f}/{snapshot['ram_total'] / GIB:.0f} GiB"
        if "rss" in snapshot:
            ram += f" (this process {snapshot['rss'] / GIB:.1f} GiB)"
        parts.append(ram)
    for i, gpu in enumerate(snapshot.get("gpus") or []):
        text = f"GPU{i} {gpu['used'] / GIB:.1f}/{gpu['total'] / GIB:.0f} GiB"
        if "util" in gpu:
            text += f" {gpu['util']}%"
        parts.append(text)
    return " · ".join(parts) or None
