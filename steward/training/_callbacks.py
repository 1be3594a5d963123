"""What the framework callbacks share: learning-rate arithmetic, checkpoint paths, custom commands.

Imports no framework: the torch helpers only touch `param_groups` and `base_lrs` attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from steward.training.client import Command, Run

# A script's own handler for "custom" commands: returns (ok, message for the owner).
CustomHandler = Callable[[Command], tuple[bool, str]]


def lr_target(cmd: Command, current: float) -> tuple[float | None, str]:
    """The new learning rate, or None and the reason it cannot be applied."""
    try:
        target = cmd.new_lr(current)
    except (KeyError, TypeError, ValueError):
        return None, f"the set_lr command has no usable value ({cmd.argument!r})"
    if not math.isfinite(target) or target <= 0:
        return None, f"{target:g} is not a usable learning rate (it must be a positive number)"
    return target, ""


def checkpoint_path(directory: str | Path, cmd: Command, default_name: str, suffix: str) -> Path:
    """Where a save command writes: only a file name is taken from the owner, never a folder."""
    wanted = Path(str(cmd.argument.get("path") or default_name)).name
    if not wanted.endswith(suffix):
        wanted += suffix
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / wanted


def run_custom(run: Run, cmd: Command, handler: CustomHandler | None) -> None:
    if handler is None:
        run.ack(cmd, False, "this training script does not handle custom commands")
        return
    try:
        ok, message = handler(cmd)
    except Exception as exc:  # the owner hears why; training goes on
        run.ack(cmd, False, f"the custom command failed: {type(exc).__name__}: {exc}")
        return
    run.ack(cmd, bool(ok), str(message))


def scale_torch_lr(optimizer: Any, schedulers: Iterable[Any], cmd: Command) -> tuple[bool, str]:
    """Set a torch optimizer's learning rate so that its scheduler keeps it.

    A scheduler recomputes the rate from its `base_lrs` at every step, so writing the
    optimizer's rate alone would be undone; scaling the base rates (and the one-cycle bounds
    kept in the parameter groups) by the same factor moves the whole schedule.
    """
    groups = optimizer.param_groups
    current = float(groups[0]["lr"])
    target, why = lr_target(cmd, current)
    if target is None:
        return False, why
    if current <= 0:
        return False, "the current learning rate is 0 (warm-up start?), so it cannot be scaled"
    factor = target / current
    for group in groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if isinstance(group.get(key), int | float):
                group[key] = group[key] * factor
    scaled = 0
    for scheduler in schedulers:
        if scheduler is not None and hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
            # get_last_lr() (what the Trainer logs) reads this cache until the next step.
            if isinstance(getattr(scheduler, "_last_lr", None), list):
                scheduler._last_lr = [lr * factor for lr in scheduler._last_lr]
            scaled += 1
    note = f" (schedule scaled x{factor:.4g})" if scaled else ""
    return True, f"learning rate {current:.4g} -> {target:.4g}{note}"


def report_crash(run: Run | None, exc: BaseException, *, owned: bool, what: str) -> Run | None:
    """A callback saw training fail: a run it owns ends as crashed (and is dropped: None is
    returned); a run the script owns hears what happened and stays the script's to end."""
    if run is None:
        return None
    if owned:
        run.close(error=exc)
        return None
    run.event(f"{what} failed: {type(exc).__name__}: {exc}", level="error")
    return run
