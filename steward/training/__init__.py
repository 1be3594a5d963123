"""Training runs: the client a training script uses (`Run`), framework callbacks, the watcher.

`from steward.training import Run` imports no ML framework; the callbacks live in
`steward.training.keras`, `.lightning` and `.huggingface` and import theirs on use.
"""

from steward.training.client import Command, Run, process_rank
from steward.training.decorator import notify_when_done
from steward.training.logging_handler import RunLogHandler

__all__ = ["Command", "Run", "RunLogHandler", "notify_when_done", "process_rank"]
