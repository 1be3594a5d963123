"""Account set-up helper: `python auth_tool.py x` (PIN OAuth) and `python auth_tool.py telegram`."""

import sys

from steward.auth.cli import main

if __name__ == "__main__":
    sys.exit(main())
