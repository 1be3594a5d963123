"""The worker's entry point: `python bot.py` runs it; `python bot.py --help` lists the rest."""

import sys

from steward.cli import main

if __name__ == "__main__":
    sys.exit(main())
