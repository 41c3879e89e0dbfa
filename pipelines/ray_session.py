"""Starting and stopping Ray for a `va` job: local (all cores) or a cluster, and always stopped again.

A local Ray is a tree of processes (GCS, raylet, dashboard and runtime-env agents, workers)
that outlive the driver unless it stops them. So while a session this process started is
open, SIGTERM (and SIGHUP) are turned into :class:`Terminated`, which unwinds like Ctrl-C's
KeyboardInterrupt through the ``finally`` that runs ``ray.shutdown()``; then whatever the
session started and shutdown left running (the agents do) is ended.

:func:`ray_output_to` keeps Ray's own lines (token authentication, "Started a local Ray
instance", Ray Data's executor timings, the C++ core's warnings, its processes' output, Python
warnings) out of a person's terminal: they go to a log file, while the project's own output
(``sys.stdout``/``sys.stderr``: progress bar, summary, errors) still reaches the terminal.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

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
    _command_line_as_utf8()
    with warnings.catch_warnings(), _stdin_detached():
        # Ray's fork+exec of its own processes is safe; LanceDB warns about any fork once it is imported.
        warnings.filterwarnings("ignore", message="lancedb fork support", category=RuntimeWarning)
        ray.init(address=address or None, **kwargs)


def _command_line_as_utf8() -> None:
    """Make this process's command line (``/proc/self/cmdline``) UTF-8 text, each other byte becoming ``?``.

    ray.init sends the command line, read from /proc, to its core worker as UTF-8: a file name that is not
    UTF-8 (an unquoted glob over ``caf\\xe9.mp4``) failed the whole run there. The command has read its
    arguments by now (the catalog skips such names with the fix); only what ps and Ray show changes, in
    place and at the same length, the way setproctitle does it on Linux.
    """
    try:
        with open("/proc/self/cmdline", "rb") as f:
            raw = f.read()
        fixed = raw.decode("utf-8", "surrogateescape").encode("utf-8", "replace")  # one "?" per bad byte
        if fixed == raw:
            return
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the name: field 3 (state) onwards
        arg_start, arg_end = int(fields[45]), int(fields[46])  # fields 48 and 49, see proc(5)
        if arg_start and arg_end - arg_start == len(fixed):
            ctypes.memmove(arg_start, fixed, len(fixed))
    except (OSError, ValueError, IndexError):  # not Linux, or /proc hidden: Ray reads what it reads
        return


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


def ray_log_path(data_dir: Path) -> Path:
    """A new log file for one command's Ray output: ``DATA_DIR/logs/ray-<UTC time>-<pid>.log``."""
    return Path(data_dir).resolve() / "logs" / f"ray-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}.log"


@contextlib.contextmanager
def ray_output_to(log_path: Path | None) -> Iterator[Path | None]:
    """While open, whatever writes to file descriptors 1 and 2 (Ray's loggers, its C++ core, the processes it
    starts) and Python warnings go to ``log_path``; ``sys.stdout`` and ``sys.stderr`` still reach the terminal.

    ``None`` (``--verbose``) changes nothing. Open it before Ray starts, so Ray's processes inherit the log.
    """
    if log_path is None:
        yield None
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    streams = (sys.stdout, sys.stderr)
    # The project's own streams: new file objects on copies of the terminal's descriptors (streams that do
    # not write to fd 1 or 2, such as a test runner's captures, stay as they are).
    reopened = {fd: _reopen(saved[fd], stream) for fd, stream in zip((1, 2), streams, strict=True) if _owns(stream, fd)}
    terminal = {fd: reopened.get(fd, stream) for fd, stream in zip((1, 2), streams, strict=True)}
    log = open(log_fd, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed below)
    show_warning = warnings.showwarning

    def to_log(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        show_warning(message, category, filename, lineno, log, line)

    for fd in (1, 2):
        os.dup2(log_fd, fd)  # Ray's handlers hold the old sys.stderr object, which writes to fd 2: the log now
    sys.stdout, sys.stderr = terminal[1], terminal[2]
    warnings.showwarning = to_log
    handler_emit = _ray_handlers_to(log)
    try:
        yield log_path
    finally:
        if handler_emit is not None:
            _plain_ray_handler().emit = handler_emit  # type: ignore[method-assign]
        warnings.showwarning = show_warning
        for stream in (*terminal.values(), *streams):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = streams
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
        for fd in (1, 2):
            if fd in reopened:
                reopened[fd].close()  # it owns its copy of the descriptor
            else:
                os.close(saved[fd])
        log.close()


def _plain_ray_handler() -> Any:
    from ray._private.log import PlainRayHandler  # Ray's own console handler (private API, hence guarded)

    return PlainRayHandler


def _ray_handlers_to(log: IO[str]) -> Any:
    """Point Ray's console log handler at ``log``; returns its own ``emit`` to restore (None if Ray has none).

    Ray's loggers (``ray``, ``ray.data``, the latter configured anew when Ray Data first runs) write to
    whatever ``sys.stderr`` is when they emit, which here is the terminal kept for the project's output.
    """
    try:
        handler = _plain_ray_handler()
    except (ImportError, AttributeError):
        return None
    emit = handler.emit

    def to_log(self: logging.Handler, record: logging.LogRecord) -> None:
        try:
            log.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    handler.emit = to_log
    return emit


def _owns(stream: IO[str], fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (OSError, ValueError, AttributeError):
        return False


def _reopen(fd: int, like: IO[str]) -> IO[str]:
    encoding = getattr(like, "encoding", None) or "utf-8"
    errors = getattr(like, "errors", None) or "strict"
    return open(fd, "w", buffering=1, encoding=encoding, errors=errors)
