"""The transcoder must not outlive the process that started it by more than a moment.

Armed when ``VIDCONV_PARENT_PID`` is set (the local executor sets it to its own pid; a Job's
container has no such parent and leaves it unset). If that process dies, even by SIGKILL, the
transcoder gets SIGTERM and takes its usual way out: ffmpeg is stopped, scratch emptied, the
result line written to whoever still listens, exit. Nothing keeps converting for nobody.

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: the kernel sends the signal when the parent
  goes. Then the parent pid is checked once, for a parent that died before the call.
- Elsewhere, and as a backstop: a daemon thread compares ``os.getppid()`` with the expected
  parent every ``POLL_SECONDS`` and sends the signal itself when they differ.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping

from vidconv.contract import PARENT_PID

log = logging.getLogger("vidconv.transcoder")

POLL_SECONDS = 1.0
PR_SET_PDEATHSIG = 1


def _parent_death_signal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return bool(prctl(PR_SET_PDEATHSIG, signum) == 0)


def _watch(parent: int, signum: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_SECONDS):
        if os.getppid() != parent:
            log.warning("the process that started the transcoder (pid %d) is gone; stopping",
                        parent)
            os.kill(os.getpid(), signum)
            return


def arm(environ: Mapping[str, str] | None = None, signum: int = signal.SIGTERM) -> bool:
    """Tie this process's life to VIDCONV_PARENT_PID's; True when armed."""
    raw = (os.environ if environ is None else environ).get(PARENT_PID, "")
    if not raw.isdigit():
        return False
    parent = int(raw)
    _parent_death_signal(signum)
    if os.getppid() != parent:  # it died before the kernel could be told
        os.kill(os.getpid(), signum)
        return True
    threading.Thread(target=_watch, args=(parent, signum), name="lifeline", daemon=True).start()
    return True
