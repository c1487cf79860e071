"""The child side of the secret handoff: receive secrets over the terminal, then become ansible-playbook.

ansible-runner writes every environment variable it is given into ``artifacts/<ident>/command`` on disk,
and extra vars go to argv or ``env/extravars``. Its one channel that touches neither is the pseudo-terminal
it drives with pexpect (meant for password prompts, never logged). So the adapter starts this script instead
of ``ansible-playbook``: it prints a one-time prompt, the adapter's ``passwords`` answer it with the secrets,
and the script puts them into its own environment as ``LCM_SECRET_<NAME>`` (readable by the playbook with
``lookup('env', ...)``, inherited by modules on the local connection) before running ansible-playbook in
the same process. Echo and canonical mode are off while reading, so nothing is echoed into the log and the
line may exceed the terminal's 4 KiB line limit.

Run as ``python -I playbook_shim.py PLAYBOOK ARGS...``: ``-I`` keeps this directory off ``sys.path``,
where the sibling ``ansible.py`` would shadow the real ``ansible`` package. Standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import select
import sys
import termios
import time

PROMPT_ENV = "LCM_SECRETS_PROMPT"
WAIT_SECONDS = 30.0


def encode(secrets: dict[str, str]) -> str:
    """The one line the adapter sends: base64, so no byte can act as a terminal control character."""
    return base64.b64encode(json.dumps(secrets).encode()).decode()


def _read_line(fd: int, deadline: float) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError("no secrets received on the terminal")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError("terminal closed before the secrets arrived")
        data += chunk
    return data


def receive(prompt: str, fd: int = 0) -> dict[str, str]:
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)
    quiet[6][termios.VMIN] = 1
    quiet[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        os.write(1, prompt.encode())
        line = _read_line(fd, time.monotonic() + WAIT_SECONDS)
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)
        os.write(1, b"\n")
    decoded: dict[str, str] = json.loads(base64.b64decode(line.strip()))
    return decoded


def main() -> None:
    prompt = os.environ.pop(PROMPT_ENV, None)
    if prompt:
        try:
            os.environ.update(receive(prompt))
        except (OSError, ValueError, EOFError) as exc:
            sys.stderr.write(f"lcm-agent: secret handoff failed: {exc}\n")
            sys.exit(1)
    # Imported only now: ansible reads parts of its configuration from the environment at import time.
    from ansible.cli.playbook import main as playbook  # type: ignore[import-untyped]

    sys.argv[0] = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    playbook()


if __name__ == "__main__":
    main()
