"""Ray at the edge: connecting to a cluster (or starting a local one) and running shard tasks."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterable, Iterator, Sized

import ray
from tqdm import tqdm

from profile_dist import storage
from profile_dist.errors import ProfileDistError
from profile_dist.stages import ray_messages


def worker_runtime_env() -> dict[str, Any] | None:
    """Env vars Ray workers need to reach the driver's S3 store (endpoint, region; never credentials).

    Under ``ray job submit`` the job's own runtime_env already applies; variables it sets are left
    out, since Ray refuses a driver runtime_env that repeats a key of the job's.
    """
    env = storage.worker_env()
    injected = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if injected:
        job_env = (json.loads(injected).get("runtime_env") or {}).get("env_vars") or {}
        env = {k: v for k, v in env.items() if k not in job_env}
    return {"env_vars": env} if env else None


#: Processes ``ray.init(address="local")`` starts that a command's own single-node runtime never uses, by the
#: method of Ray's ``Node`` that starts each. Measured on 2 cores (docs/benchmarks.md, "Time to first useful
#: work"): together ~0.3 GiB of resident memory, and ray.init waits ~2 s for the API server to come up.
UNUSED_LOCAL_PROCESSES: dict[str, str] = {
    # Job submission, the state API (`ray list`), usage stats: nothing reaches a command's private runtime,
    # which ends with the command. (include_dashboard=False still starts it, with fewer modules.)
    "start_api_server": "the dashboard's API server",
    # The autoscaler's monitor: a local runtime is one fixed node.
    "start_monitor": "the autoscaler monitor",
}
#: Started only when workers' output is forwarded to the driver (log_to_driver, i.e. --verbose).
LOG_MONITOR = "start_log_monitor"


@contextlib.contextmanager
def _lean_local_node(log_to_driver: bool) -> Iterator[None]:
    """While it is open, a new local Ray node skips the processes in UNUSED_LOCAL_PROCESSES (and the log
    monitor unless ``log_to_driver``), and its dashboard agent listens on any free port. ray.init offers no
    option for these, so the ``Node`` methods involved are stood in for (no-ops; a wrapped ``__init__``) and
    restored on exit. A Ray without one of those methods (an upgrade) just starts it, as before: slower,
    never wrong. Never used when joining a cluster (--address)."""
    try:
        from ray._private import ray_constants
        from ray._private.node import Node
    except ImportError:  # pragma: no cover - a Ray that moved it: start everything
        yield
        return
    names = [*UNUSED_LOCAL_PROCESSES, *([] if log_to_driver else [LOG_MONITOR])]
    saved = {name: Node.__dict__[name] for name in names if callable(Node.__dict__.get(name))}
    for name in saved:
        setattr(Node, name, lambda self, *args, **kwargs: None)
    starting: list[Any] = []  # the Node being constructed, for _promptly
    original_init = Node.__dict__.get("__init__")
    agent_default_port = getattr(ray_constants, "DEFAULT_DASHBOARD_AGENT_LISTEN_PORT", None)
    if callable(original_init):
        saved["__init__"] = original_init

        def init_with_free_agent_port(self, ray_params, *args, **kwargs):  # type: ignore[no-untyped-def]
            starting.append(self)
            # The dashboard agent's HTTP port is fixed (52365) by default. With another Ray on this machine (a
            # second command, a `ray start`) it is taken, and the agent retries for ~3.3 s before it gives up
            # on it, while the raylet waits for the agent. Our private runtime serves nobody on it: any port.
            if getattr(ray_params, "dashboard_agent_listen_port", None) == agent_default_port:
                ray_params.dashboard_agent_listen_port = 0
            original_init(self, ray_params, *args, **kwargs)

        Node.__init__ = init_with_free_agent_port
    try:
        from ray._private import services
    except ImportError:  # pragma: no cover - a Ray that moved it: Ray's own wait
        services = None
    original_get_node = getattr(services, "get_node", None)
    if callable(original_get_node):
        services.get_node = _promptly(original_get_node, starting)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(Node, name, method)
        if callable(original_get_node):
            services.get_node = original_get_node


#: How often a starting node's registration with the GCS is checked (see _promptly).
REGISTRATION_POLL_S = 0.05


def _promptly(ray_get_node: Callable[[str, str], Any], starting: list[Any]) -> Callable[[str, str], Any]:
    """Ray's ``services.get_node`` for the node being started, but waiting in 50 ms steps instead of 1 s ones.

    ray.init asks the GCS for the new node with a call that, until the raylet has registered (~0.9 s here, once
    its agents are up), sleeps a whole second between checks: on average half a second, sometimes a full
    second, of every command's start went by after the node was ready. This asks the GCS, through the starting
    node's own client, every REGISTRATION_POLL_S until the node is ALIVE, then makes Ray's call, which then
    answers at once. Anything unexpected (a Ray without these names, an RPC error) leaves the wait to Ray's call.
    """

    def get_node(gcs_address: str, node_id: str) -> Any:
        try:
            import time

            from ray._raylet import NodeID
            from ray.core.generated.gcs_pb2 import GcsNodeInfo
            from ray.core.generated.gcs_service_pb2 import GetAllNodeInfoRequest

            client = starting[-1]._gcs_client
            selector = GetAllNodeInfoRequest.NodeSelector(node_id=NodeID.from_hex(node_id).binary())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not client.get_all_node_info(
                    timeout=5, node_selectors=[selector], state_filter=GcsNodeInfo.GcsNodeState.ALIVE):
                time.sleep(REGISTRATION_POLL_S)
        except Exception:  # noqa: BLE001 - Ray's own call below waits, and reports, as it always has
            pass
        return ray_get_node(gcs_address, node_id)

    return get_node


class _EarlyStart:
    """ensure_ray(address) on a thread that then stays until the runtime is shut down: Ray's processes are
    started with PR_SET_PDEATHSIG (they die with their parent, so a killed command leaves none behind), and on
    Linux the "parent" is the thread that forked them."""

    def __init__(self, address: str | None):
        self.address = address
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.released = threading.Event()
        self.thread = threading.Thread(target=self._start, name="profile-dist: starting Ray", daemon=True)
        self.thread.start()

    def _start(self) -> None:
        try:
            _init_ray(self.address)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the runtime
            self.error = exc
            return
        finally:
            self.ready.set()
        ray_messages.after_shutdown(self.released.set)
        self.released.wait()

    def result(self) -> None:
        self.ready.wait()
        if self.error is not None:
            raise self.error


_early: _EarlyStart | None = None


@contextlib.contextmanager
def ray_started_early(address: str | None = None) -> Iterator[None]:
    """Ray starts on a thread as the block begins; the block's first ensure_ray waits for it.

    A command runs in this block so that Ray's processes start (~2 s, much of it waiting for the raylet to
    register) while it imports its stage (~1 s) and plans. At the end a runtime the block never asked for is
    still waited for, so that it exists to be shut down (its failure to start is then in Ray's log only). Ray
    sets its SIGTERM handler (exit, so the runtime is shut down) only from the main thread: it is set here.
    """
    global _early
    if ray.is_initialized() or _early is not None:
        yield
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
    _early = _EarlyStart(address)
    try:
        yield
    finally:
        early, _early = _early, None
        if early is not None:
            early.ready.wait()


def ensure_ray(address: str | None = None) -> None:
    """Connect to ``address`` / RAY_ADDRESS, or start a local Ray runtime on demand (or wait for the one
    ray_started_early began)."""
    global _early
    early, _early = _early, None
    if early is not None:
        early.result()
    if not ray.is_initialized():
        _init_ray(address)


def _init_ray(address: str | None) -> None:
    address = address or os.environ.get("RAY_ADDRESS")
    options: dict[str, Any] = {"runtime_env": worker_runtime_env(), "logging_level": logging.WARNING}
    routing = ray_messages.current()
    if routing is not None:  # a CLI command: everything goes where the user chose (see ray_messages)
        options["logging_level"] = logging.INFO
        options["log_to_driver"] = routing.verbose
        routing.take_ray_logger()
    if address:
        ray.init(address=address, **options)
    else:
        # address="local": a new runtime of our own, as the CLI promises, never whatever cluster another process
        # left in /tmp/ray/ray_current_cluster (its workers may not see this machine's paths); --address auto joins one.
        with _lean_local_node(options.get("log_to_driver", True)):
            ray.init(address="local", include_dashboard=False, **options)
    if routing is not None:
        routing.started_ray = True


def unwrap(exc: BaseException) -> BaseException:
    """The user-facing error inside a Ray task failure, so it reads as if raised locally."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, ProfileDistError):
        return cause
    return exc


#: How long a failed run waits for the tasks it cancelled to end before it reports the failure.
CANCEL_WAIT_S = 30.0


def as_completed(
    remote_fn: Callable[..., Any], calls: Iterable[tuple], *, desc: str, progress: bool | None = None,
    total: int | None = None, max_in_flight: int | None = None,
) -> Iterator[tuple[int, Any]]:
    """Run ``remote_fn.remote(*args)`` for each args tuple and yield (call position, result) as tasks finish,
    with a progress bar.

    At most ``max_in_flight`` tasks (default: 4 per CPU of the cluster) are submitted at a time, and
    ``calls`` is consumed as they finish: a generator of calls keeps only those tasks' arguments alive (the
    shuffles' per-bucket piece lists grow with shards x buckets), and a caller that folds the results as they
    come (the reduce's partials) holds no more than that many. The first failure cancels what is still
    pending, waits (up to CANCEL_WAIT_S) for it to end, and is re-raised as the user's error.
    """
    if progress is None:
        progress = os.environ.get("PROFILE_DIST_PROGRESS", "1") != "0"
    if total is None and isinstance(calls, Sized):
        total = len(calls)
    if max_in_flight is None:
        max_in_flight = max(4, 4 * int(ray.cluster_resources().get("CPU", 1)))
    # In a terminal the bar redraws in place; in job logs (ray job submit) a line every 30 s is enough.
    interactive = sys.stderr.isatty()
    remaining = enumerate(calls)
    index: dict[Any, int] = {}
    pending: list[Any] = []

    def submit() -> None:
        while len(pending) < max_in_flight:
            position, args = next(remaining, (None, None))
            if position is None:
                return
            ref = remote_fn.remote(*args)
            index[ref] = position
            pending.append(ref)

    with tqdm(total=total, desc=desc, unit="shard", disable=not progress, file=sys.stderr,
              mininterval=0.1 if interactive else 30.0, ascii=not interactive) as bar:
        submit()
        while pending:
            done, pending[:] = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except Exception as exc:
                    for other in pending:
                        ray.cancel(other)
                    # Let them end before the caller cleans up: a running task finishing a write could otherwise
                    # recreate a staging area just removed (seen once in ~10 runs of a failing ingest's test).
                    ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT_S, fetch_local=False)
                    raise unwrap(exc) from None
                bar.update(1)
                yield index.pop(ref), result
            submit()


def run_tasks(
    remote_fn: Callable[..., Any], calls: Iterable[tuple], *, desc: str, progress: bool | None = None,
    total: int | None = None, max_in_flight: int | None = None,
) -> list[Any]:
    """``as_completed``'s results in call order."""
    results = dict(as_completed(remote_fn, calls, desc=desc, progress=progress, total=total, max_in_flight=max_in_flight))
    return [results[i] for i in range(len(results))]
