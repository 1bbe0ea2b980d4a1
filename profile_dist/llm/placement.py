"""Where the LLM worker actors run: spread over the cluster's nodes in a fixed order, not at Ray's discretion.

Ray's ``SPREAD`` strategy is best effort: an actor that needs no CPU (a worker is I/O: ``num_cpus=0``) may
land beside another one, so two workers can share one node, one network interface and one event-loop core
while other nodes stay idle. Instead, :func:`worker_nodes` deals the workers round-robin over the alive
nodes that have CPUs (the nodes meant for work: a head started with ``CPU: 0``, as in cluster.yaml, gets
none unless no node has CPUs), beginning with the driver's own node when it qualifies (a worker there can
write a local reply cache itself) and then in node-id order, so the same cluster always gets the same
placement. :func:`scheduling_strategy` pins each worker to its node. The pin is hard: Ray's soft node
affinity was seen to place workers on other nodes than asked while the asked node was alive and idle
(Ray 2.x, nodes sharing one IP); a hard pin to a node that is alive when the workers start costs nothing
more, since a worker whose node is lost dies either way, and the engine replaces a dead worker on a node
dealt again from the nodes alive at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    alive: bool
    cpus: float


def nodes_from_ray(entries: Sequence[dict[str, Any]]) -> list[NodeInfo]:
    """:class:`NodeInfo` of each entry of ``ray.nodes()``."""
    return [NodeInfo(e["NodeID"], bool(e.get("Alive")), float((e.get("Resources") or {}).get("CPU", 0.0)))
            for e in entries]


def worker_nodes(n_workers: int, nodes: Sequence[NodeInfo], driver_node: str | None = None) -> list[str | None]:
    """The node of each of ``n_workers`` workers, dealt round-robin (None for every worker: no node is alive)."""
    alive = [n for n in nodes if n.alive]
    candidates = [n for n in alive if n.cpus > 0] or alive
    order = sorted(n.node_id for n in candidates)
    if driver_node in order:
        order.remove(driver_node)
        order.insert(0, driver_node)
    if not order:
        return [None] * n_workers
    return [order[i % len(order)] for i in range(n_workers)]


def scheduling_strategy(node_id: str | None) -> Any:
    """A pin to ``node_id`` (Ray's default placement when None)."""
    return "DEFAULT" if node_id is None else NodeAffinitySchedulingStrategy(node_id, soft=False)


def place(n_workers: int, driver_node: str | None) -> list[Any]:
    """The scheduling strategy of each of ``n_workers`` workers on the connected cluster, as it is now."""
    return [scheduling_strategy(node) for node in worker_nodes(n_workers, nodes_from_ray(ray.nodes()), driver_node)]
