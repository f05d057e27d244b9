"""First contact: what a script says when the Python running it lacks the requests library.

Imports nothing outside the standard library, so it can speak where requests is missing."""

from __future__ import annotations

import sys
from typing import NoReturn


def missing_requests(script: str, module_name: str) -> NoReturn:
    """Called from a script's ``except ImportError`` around ``import requests``.

    script: the script's file name, for the message ("enroll_user.py"); module_name: the
    script's ``__name__``. Run as a script ("__main__"): one line on stderr and SystemExit(2),
    no traceback. Imported (a test, the installed command's entry point): the ImportError is
    raised again, for the caller to see."""
    if module_name != "__main__":
        raise ImportError("No module named 'requests'") from None
    print(f"{script}: error: this Python ({sys.executable}) does not have the requests library "
          f"the script needs; install it with: {sys.executable} -m pip install requests "
          "(or as the README's install section says)", file=sys.stderr)
    raise SystemExit(2)
