"""A service ends with the process that started it, even when that one is SIGKILLed.

``datatorag up`` runs each service in a session of its own (a terminal's Ctrl-C must not reach
them before the supervisor stops them in order), so killing ``up``'s process group used to leave
them running as orphans that kept the ports and the queues. The supervisor names itself in
``DATATORAG_PARENT_PID``; a service that finds it asks Linux for SIGTERM when that parent dies
(``PR_SET_PDEATHSIG``, prctl(2)) and so stops as it does on any stop. Without the variable (ECS,
a service run by hand) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_ENV = "DATATORAG_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_parent() -> None:
    """SIGTERM to this process when its supervisor dies; exit now if it is already gone."""
    expected = os.environ.get(PARENT_ENV)
    if not expected or sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    # The parent may have died before the request: then this process was already re-parented.
    if os.getppid() != int(expected):
        raise SystemExit(f"the process that started this one ({expected}) is gone")


def children_end_with_me() -> None:
    """Name this process as the parent of the services it starts from now on."""
    os.environ[PARENT_ENV] = str(os.getpid())
