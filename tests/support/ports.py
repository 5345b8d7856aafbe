"""Ports for the servers the tests start.

Not the kernel's pick (bind to port 0): that comes from the ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range, 32768–60999 here), which every outgoing
connection also draws its source port from — a server started a moment later can find
"its" port taken by a client socket. These come from below that range, unused by
clients, and are handed out once per process.
"""

import os
import random
import socket

_LOW, _HIGH = 20000, 32000
_given: set[int] = set()
_rng = random.Random(os.getpid())


def free_port() -> int:
    for _ in range(1000):
        port = _rng.randrange(_LOW, _HIGH)
        if port in _given:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port between {_LOW} and {_HIGH}")
