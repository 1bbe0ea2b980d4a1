"""Where the LLM worker actors go (profile_dist/llm/placement.py): a pure function of the node list, so the
same cluster always gets the same placement. The multi-node test (tests/cluster/test_multinode.py) checks it
on a real three-node cluster."""

from __future__ import annotations

import random
from collections import Counter

from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from profile_dist.llm.placement import NodeInfo, nodes_from_ray, place, scheduling_strategy, worker_nodes

HEAD = NodeInfo("n-head", True, 1.0)
A, B = NodeInfo("n-a", True, 1.0), NodeInfo("n-b", True, 1.0)


def test_two_workers_on_a_three_node_cluster_get_two_nodes_the_drivers_first():
    assert worker_nodes(2, [A, HEAD, B], driver_node="n-head") == ["n-head", "n-a"]
    assert worker_nodes(2, [A, HEAD, B], driver_node="n-b") == ["n-b", "n-a"]


def test_workers_are_dealt_round_robin_one_per_node_before_any_node_gets_two():
    nodes = [NodeInfo(f"n-{i}", True, 4.0) for i in range(3)]
    for n_workers in range(1, 10):
        counts = Counter(worker_nodes(n_workers, nodes, driver_node="n-1"))
        assert sum(counts.values()) == n_workers
        assert max(counts.values()) - min(counts.get(n.node_id, 0) for n in nodes) <= 1, counts


def test_the_placement_does_not_depend_on_the_order_ray_lists_the_nodes():
    nodes = [NodeInfo(f"n-{i:02d}", True, 2.0) for i in range(7)]
    expected = worker_nodes(5, nodes, driver_node="n-03")
    rng = random.Random(0)
    for _ in range(20):
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        assert worker_nodes(5, shuffled, driver_node="n-03") == expected
    # The driver's node first, then the others in id order.
    assert expected == ["n-03", "n-00", "n-01", "n-02", "n-04"]


def test_a_head_without_cpus_and_dead_nodes_get_no_worker():
    head = NodeInfo("n-head", True, 0.0)  # cluster.yaml's head: CPU 0, runs the driver
    dead = NodeInfo("n-dead", False, 8.0)
    assert worker_nodes(3, [head, dead, A, B], driver_node="n-head") == ["n-a", "n-b", "n-a"]


def test_with_no_cpu_node_the_workers_still_go_to_alive_nodes_and_with_none_ray_decides():
    only_head = NodeInfo("n-head", True, 0.0)
    assert worker_nodes(2, [only_head], driver_node="n-head") == ["n-head", "n-head"]
    assert worker_nodes(2, [NodeInfo("n-x", False, 1.0)], driver_node=None) == [None, None]
    assert scheduling_strategy(None) == "DEFAULT"


def test_a_node_is_a_hard_pin():
    node_id = "ab" * 28  # Ray node ids are 28 bytes, in hex
    strategy = scheduling_strategy(node_id)
    assert isinstance(strategy, NodeAffinitySchedulingStrategy)
    assert strategy.node_id == node_id and not strategy.soft


def test_nodes_are_read_from_ray_nodes_of_a_real_runtime(ray_session):
    nodes = nodes_from_ray(ray_session.nodes())
    here = ray_session.get_runtime_context().get_node_id()
    assert [n.node_id for n in nodes if n.alive] == [here] and all(n.cpus > 0 for n in nodes if n.alive)
    strategies = place(2, here)
    assert [(s.node_id, s.soft) for s in strategies] == [(here, False), (here, False)]
