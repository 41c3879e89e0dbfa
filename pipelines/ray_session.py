"""Starting and stopping Ray for a `va` job: local (all cores) or a cluster, and always stopped again.

A local Ray is a tree of processes (GCS, raylet, dashboard and runtime-env agents, workers)
that outlive the driver unless it stops them. So while a session this process started is
open, SIGTERM (and SIGHUP) are turned into :class:`Terminated`, which unwinds like Ctrl-C's
KeyboardInterrupt through the ``finally`` that runs ``ray.shutdown()``; then whatever the
session started and shutdown left running (the agents do) is ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import Any

import psutil
import ray

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
LEFTOVER_GRACE_S = 3.0  # how long Ray's own processes get to exit after ray.shutdown() before they are ended


class Terminated(SystemExit):
    """This process got SIGTERM or SIGHUP; raised so cleanup runs, exits with 128 + the signal number."""


@contextlib.contextmanager
def _stdin_detached() -> Iterator[None]:
    """Point fd 0 at /dev/null while Ray starts, so none of its processes inherits the terminal.

    A worker in the background that touches the terminal is stopped by the kernel (SIGTTIN/SIGTTOU):
    PySceneDetect runs ``ffmpeg`` at import to find it, and ffmpeg sets up the terminal it finds on stdin.
    """
    try:
        saved = os.dup(0)
    except OSError:  # no stdin at all: nothing to detach
        yield
        return
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)


def start_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """``ray.init`` for a job: a local Ray (all cores unless ``num_cpus``) or the cluster at ``address``."""
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    # Inside a Ray job RAY_ADDRESS (Ray's own variable, not a VA setting) makes ray.init() join that
    # cluster, which refuses resource arguments.
    if not address and not os.environ.get("RAY_ADDRESS"):
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    with warnings.catch_warnings(), _stdin_detached():
        # Ray's fork+exec of its own processes is safe; LanceDB warns about any fork once it is imported.
        warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
        ray.init(address=address or None, **kwargs)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While open (in the main thread), SIGTERM and SIGHUP raise :class:`Terminated` once instead of killing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def terminate(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:  # a second signal while cleaning up must not cut the cleanup short
            raised = True
            raise Terminated(128 + signum)

    previous = {sig: signal.signal(sig, terminate) for sig in TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Use the Ray already running in this process, or start one (local unless ``address``) and stop it on any exit."""
    if ray.is_initialized():
        yield
        return
    before = _descendants()
    try:
        start_ray(address)
        # After ray.init: it installs its own SIGTERM handler (sys.exit), which this one replaces while open.
        with signals_raise():
            yield
    finally:
        started = [p for p in _descendants() if p.pid not in {b.pid for b in before}]
        ray.shutdown()
        _stop_leftovers(started)


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _stop_leftovers(processes: list[psutil.Process], *, grace_s: float = LEFTOVER_GRACE_S) -> None:
    """End what this session started and ``ray.shutdown()`` left running (its dashboard and runtime-env
    agents outlive the raylet and ignore SIGTERM): SIGTERM, then SIGKILL after ``grace_s``."""
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(alive, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace_s)


@contextlib.contextmanager
def data_context() -> Iterator[None]:
    """Ray Data settings for a job: a dropped block (a crashed title) must not end the job; no progress bars."""
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.max_errored_blocks, ctx.enable_progress_bars, ctx.print_on_execution_start)
    ctx.max_errored_blocks = -1
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    try:
        yield
    finally:
        ctx.max_errored_blocks, ctx.enable_progress_bars, ctx.print_on_execution_start = saved
