"""cluster.yaml: Ray's own autoscaler schema accepts it, and it carries what running profile-dist on AWS needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_ray_validates_it_with_the_autoscaler_schema(cluster):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(cluster))  # what `ray up` runs before touching AWS


def test_the_schema_check_is_not_vacuous(cluster):
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = {**cluster, "max_wokers": 3}
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_aws_head_and_autoscaling_cpu_workers(cluster):
    assert cluster["provider"]["type"] == "aws" and cluster["provider"]["region"]
    types = cluster["available_node_types"]
    assert cluster["head_node_type"] in types
    workers = [t for name, t in types.items() if name != cluster["head_node_type"]]
    assert workers, "no worker node type"
    for worker in workers:
        assert worker["min_workers"] < worker["max_workers"] <= cluster["max_workers"]  # room to scale
        assert worker["resources"].get("GPU", 0) == 0
    assert cluster["idle_timeout_minutes"] > 0 and cluster["upscaling_speed"] > 0


def test_every_node_gets_s3_access_from_an_instance_profile(cluster):
    for name, node_type in cluster["available_node_types"].items():
        profile = node_type["node_config"]["IamInstanceProfile"]
        assert profile["Arn"].startswith("arn:aws:iam::") and ":instance-profile/" in profile["Arn"], name
        assert "AWS_ACCESS_KEY_ID" not in yaml.safe_dump(node_type)  # no keys on the machines


def test_setup_installs_this_package_and_the_head_serves_the_job_api(cluster):
    setup = " ".join(cluster["setup_commands"])
    mounted = [remote for remote, local in cluster["file_mounts"].items() if local == "."]
    assert mounted and any(f"pip install" in cmd and mounted[0] in cmd for cmd in cluster["setup_commands"]), setup
    head = " ".join(cluster["head_start_ray_commands"])
    assert "ray start --head" in head and "--dashboard-port=8265" in head and "--dashboard-host=0.0.0.0" in head
    assert any("ray start --address=$RAY_HEAD_IP" in cmd for cmd in cluster["worker_start_ray_commands"])
    assert "py311" in cluster["docker"]["image"]  # the package needs Python >= 3.11


def test_the_limits_to_tune_are_documented_in_place():
    text = (REPO / "cluster.yaml").read_text()
    for key in ("max_workers:", "upscaling_speed:", "idle_timeout_minutes:", "min_workers:", "InstanceType:", "MarketType:"):
        lines = [line for line in text.splitlines() if key in line]
        context = text[max(0, text.index(key) - 300):text.index(key)]
        assert any("TUNE" in line for line in lines) or "TUNE" in context, key
