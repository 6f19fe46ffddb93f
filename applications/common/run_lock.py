"""One training process per run directory: a pid file that a dead process cannot hold."""

import contextlib
import os
import socket
import time

from applications.common.config import ConfigError


def _holder(path):
    """(pid, host, started) written in a lock file, or None if it can't be read."""
    try:
        with open(path) as handle:
            pid, host, started = handle.read().split("\n")[:3]
        return int(pid), host, float(started)
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@contextlib.contextmanager
def run_lock(workdir, name="run"):
    """Holds `workdir/.<name>.lock` while the block runs.

    A lock left by a process that has died (on this host) is taken over; one held by a live
    process is refused with a ConfigError that names it. A lock from another host is
    trusted: its process can't be checked from here.
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, f".{name}.lock")
    mine = f"{os.getpid()}\n{socket.gethostname()}\n{time.time()}\n"
    for _ in range(3):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(path)
            if holder is not None:
                pid, host, started = holder
                if host != socket.gethostname() or _alive(pid):
                    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
                    raise ConfigError(
                        f"{workdir} is in use by process {pid} on {host} (since {since}); wait "
                        f"for it to finish or choose another --workdir") from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # a dead process's lock, or one half written
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(mine)
        break
    else:
        raise ConfigError(f"could not lock {workdir}: another process keeps taking {path}")
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
