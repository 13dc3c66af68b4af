"""Helpers shared by the Python benchmark scripts (compare.py, hop.py): a free loopback port and
a process's CPU time."""

import socket


def free_port():
    """A free TCP port on 127.0.0.1 (free when asked; bind soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    """User + system CPU time of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
