"""Where Ray's own messages go while a command runs: the terminal (``--verbose``) or a log file.

Ray prints banners and warnings ("Token authentication is enabled ...", "Started a local Ray
instance"), forwards its workers' output and lets its C++ core write to file descriptor 2. A command
should show only its own progress and summary, so by default all of that goes into one log file that
the command names at the end. This module does not import Ray: commands that never start it pay nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Iterator, TextIO

_FORMAT = "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"


@dataclass
class RayMessages:
    """The routing in force: ``verbose`` (terminal) or ``path`` (the log file)."""

    verbose: bool
    path: str | None = None
    stream: TextIO | None = None
    started_ray: bool = False  # set by ensure_ray: Ray is shut down at the end of the block, inside the routing
    _saved: tuple[list[logging.Handler], bool] | None = None

    def take_ray_logger(self) -> None:
        """Send the ``ray`` logger's records to the log. Called once Ray is imported (ensure_ray): importing
        Ray installs its stderr handler, so taking the logger earlier would not hold."""
        if self.stream is None or self._saved is not None:
            return
        ray_logger = logging.getLogger("ray")
        self._saved = (ray_logger.handlers[:], ray_logger.propagate)
        to_log = logging.StreamHandler(self.stream)
        to_log.setFormatter(logging.Formatter(_FORMAT))
        ray_logger.handlers, ray_logger.propagate = [to_log], False

    def give_back_ray_logger(self) -> None:
        if self._saved is not None:
            logging.getLogger("ray").handlers, logging.getLogger("ray").propagate = self._saved
            self._saved = None

    def kept(self) -> bool:
        """True when something was written to the log (an empty log is removed at the end)."""
        return bool(self.path) and os.path.exists(self.path) and os.path.getsize(self.path) > 0


_current: RayMessages | None = None


def current() -> RayMessages | None:
    """The routing of the running command, or None outside one (library use: Ray's own defaults)."""
    return _current


def default_log_path(command: str) -> str:
    """``$PROFILE_DIST_LOG_DIR`` (default: TMPDIR/profile-dist-logs)/<command>-<time>-<pid>.log"""
    directory = os.environ.get("PROFILE_DIST_LOG_DIR") or os.path.join(tempfile.gettempdir(), "profile-dist-logs")
    return os.path.join(directory, f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")


def _stderr_is_fd2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # pytest's capture, a notebook: no descriptor 2 to move
        return False


_after_shutdown: list[Callable[[], None]] = []


def after_shutdown(callback: Callable[[], None]) -> None:
    """Call ``callback`` once the command's runtime is shut down (runtime.ray_started_early's thread ends then)."""
    _after_shutdown.append(callback)


def _shutdown_ray() -> None:
    ray = sys.modules.get("ray")
    try:
        if ray is not None and ray.is_initialized():
            ray.shutdown()
    finally:
        while _after_shutdown:
            _after_shutdown.pop()()


def release_ray() -> None:
    """Shut down, now, the runtime this command started (nothing else's): what the command still has to do
    needs no Ray, and should not share the machine with idle workers. A later ensure_ray starts a new one."""
    state = _current
    if state is not None and state.started_ray:
        _shutdown_ray()
        state.started_ray = False


@contextlib.contextmanager
def ray_messages(verbose: bool, log_path: str) -> Iterator[RayMessages]:
    """Route Ray's messages for one command: to the terminal if ``verbose``, else into ``log_path``.

    Quiet: the ``ray`` logger writes to the log (from when Ray is imported); ensure_ray turns off log_to_driver (worker output stays
    in Ray's session logs); and when this process's stderr is descriptor 2, descriptor 2 itself goes
    to the log while Python's ``sys.stderr`` (progress bars, errors) keeps writing to the terminal.
    """
    global _current
    if verbose:
        _current = RayMessages(verbose=True)
        try:
            yield _current
        finally:
            _current = None
        return
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")
    state = RayMessages(verbose=False, path=log_path, stream=log)
    if "ray" in sys.modules:
        state.take_ray_logger()
    move_fd = _stderr_is_fd2()
    saved_stderr = sys.stderr
    terminal_fd = -1
    if move_fd:
        sys.stderr.flush()
        terminal_fd = os.dup(2)
        os.dup2(log.fileno(), 2)
        sys.stderr = os.fdopen(terminal_fd, "w", buffering=1, encoding=saved_stderr.encoding,
                               errors="backslashreplace", closefd=False)
    _current = state
    try:
        yield state
    finally:
        try:
            if state.started_ray:
                _shutdown_ray()
        finally:
            _current = None
            if move_fd:
                sys.stderr.flush()
                sys.stderr = saved_stderr
                os.dup2(terminal_fd, 2)
                os.close(terminal_fd)
            state.give_back_ray_logger()
            log.close()
            if not state.kept():
                os.remove(log_path)
