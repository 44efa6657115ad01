"""Child processes finemed starts (launched ranks, vLLM servers): free ports, and dying with their parent."""

from __future__ import annotations

import ctypes
import signal
import socket
import sys


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies, even by SIGKILL (PR_SET_PDEATHSIG; atexit
    does not run then), so a killed run leaves no child holding a port or memory. A no-op elsewhere. Called in the
    child before exec (``preexec_fn``) or by the child itself."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)
        except (OSError, AttributeError):
            pass


def term_with_parent() -> None:
    """:func:`die_with_parent` with SIGTERM: a vLLM server gets to stop its engine core."""
    die_with_parent(signal.SIGTERM)
