"""Loopback ports for the local servers (Airflow, PostgreSQL, function processes, emulators).

Standard library only: imported by devtools, bench and tests alike, in the function's venv.
"""

from __future__ import annotations

import errno
import socket
import time

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on now; the caller binds it soon (another process could take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True if a server could bind the port now (SO_REUSEADDR, as uvicorn, gunicorn and postgres use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def wait_port_free(port: int, timeout: float) -> bool:
    """Wait until ``port`` can be bound again (a stopped server's socket may linger); False on timeout."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def wait_port_open(port: int, timeout: float) -> bool:
    """Wait until something accepts connections on ``port``; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
