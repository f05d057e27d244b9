"""The scripts' names as the user runs them, and values quoted for the user's shell: for
usage lines and for hints that name a command to paste."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from canvas_http import Config

# The commands pip, pipx and uv put on PATH (pyproject.toml [project.scripts]).
COMMANDS = ("enroll_user", "set_user_state")


def installed() -> bool:
    """True when this process was started as an installed command (enroll_user on PATH,
    enroll_user.exe on Windows), False for python enroll_user.py or any other program."""
    name = os.path.basename(sys.argv[0]).lower() if sys.argv and sys.argv[0] else ""
    return any(name in (command, command + ".exe", command + "-script.py") for command in COMMANDS)


def prog_name(script: str) -> str:
    """A script's name as the user runs it, for usage and error lines: 'enroll_user.py'
    from a checkout, 'enroll_user' when installed."""
    name = script[:-3] if script.endswith(".py") else script
    return name if installed() else name + ".py"


def command(script: str) -> str:
    """What to type to run a script (either of the two), for hints: as this process was
    started. 'set_user_state' when installed; 'python -m set_user_state' after python -m;
    'python ../tools/set_user_state.py' when run by a path from another folder (the path as
    typed, the script's file name changed); else 'python set_user_state.py'."""
    if installed():
        return prog_name(script)
    name = script[:-3] if script.endswith(".py") else script
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name in COMMANDS:  # python -m enroll_user: the module, not a path
        return f"python -m {name}"
    return f"python {shell_quote(os.path.join(started_in(), name + '.py'))}"


def started_in() -> str:
    """The folder part of the path this process's script was started by, as typed ('' for
    python enroll_user.py, '../tools' for python ../tools/enroll_user.py); '' when the
    program is not one of the scripts (a test runner)."""
    started = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if os.path.basename(started).lower() in (command + ".py" for command in COMMANDS):
        return os.path.dirname(started)
    return ""


def config_args(config: Config) -> list[str]:
    """['--config', FILE] when the host and token came from a file other than ./config.json
    (which a command finds by itself), for hints that name a command to run; else []."""
    if config.source.startswith("the environment") or config.source == "config.json":
        return []
    return ["--config", config.source]


def shell_quote(text: str) -> str:
    """A value as this platform's shell takes it in a hint (cmd.exe on Windows)."""
    if os.name == "nt":
        # list2cmdline quotes only spaces and tabs; cmd.exe also acts on & | < > ^ ( ) and
        # %VAR% outside double quotes, so a value with any of them is quoted whole
        quoted = subprocess.list2cmdline([text])
        if quoted == text and re.search(r'[&|<>^()%!]', text):
            return f'"{text}"'
        return quoted
    return shlex.quote(text)

