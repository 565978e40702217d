"""systemd's readiness protocol (``Type=notify``), spoken directly: one datagram to ``$NOTIFY_SOCKET``.

The protocol is a newline-separated ``KEY=VALUE`` datagram on a unix socket, so a few lines of socket
code replace a dependency on libsystemd or a Python binding. Outside systemd ``NOTIFY_SOCKET`` is unset
and every call is a cheap no-op.

The router sends ``READY=1`` only once every backend answered (so ``systemctl start`` and units ordered
``After=`` it wait for a usable router, not just a listening one), ``STATUS=`` lines while it waits or
a backend is down (shown by ``systemctl status``), and ``STOPPING=1`` when it starts draining.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("router.sdnotify")


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to the service manager; ``False`` when there is none."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # a Linux abstract-namespace socket
    elif not address.startswith("/"):
        log.debug("NOTIFY_SOCKET=%r is not a unix socket path; not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        # Never fatal: a lost status line must not take the router down.
        log.warning("could not notify systemd at %s: %s", os.environ["NOTIFY_SOCKET"], exc)
        return False
    return True


def status(text: str) -> bool:
    """A one-line ``STATUS=`` for ``systemctl status`` (newlines would start a new protocol field)."""
    return notify("STATUS=" + " ".join(text.split()))
