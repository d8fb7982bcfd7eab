"""The rehearsal's configs are cluster.yaml with the listed swaps made, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray.autoscaler._private.util import prepare_config, validate_config

from hmtl.orchestration.platform.rehearsal import autoscaling, swaps

ROOT = Path(__file__).resolve().parents[5]
SWAPPED = {"provider", "auth", "docker", "available_node_types", "head_node_type", "max_workers"}
SITE = swaps.Site(
    user="someone",
    key=Path("/tmp/r/key"),
    proxy_command="nsenter --target 1 --net -- python relay.py 127.0.0.1 2222",
    bucket="rehearsal-bucket",
    s3_endpoint="http://127.0.0.1:9000",
    head_venv=Path("/tmp/r/venv"),
)


@pytest.fixture(scope="module")
def cluster() -> dict:
    return swaps.load(ROOT / "cluster.yaml")


def test_everything_but_the_swaps_comes_from_cluster_yaml(cluster):
    config = swaps.launcher_config(cluster, SITE)
    for key, value in cluster.items():
        if key in SWAPPED:
            continue
        expected = json.loads(json.dumps(value).replace("YOUR-BUCKET", SITE.bucket))
        assert config[key] == expected, key
    # The commands are cluster.yaml's, word for word, but for the bucket's name.
    for key in ("setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):
        assert len(config[key]) == len(cluster[key]) > 0
    assert "YOUR-BUCKET" not in json.dumps(config)
    assert f"s3://{SITE.bucket}/hmtl/mlflow" in " ".join(config["head_start_ray_commands"])


def test_the_swaps_are_the_listed_ones(cluster):
    config = swaps.launcher_config(cluster, SITE)
    assert config["provider"] == {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    assert config["auth"] == {
        "ssh_user": SITE.user,
        "ssh_private_key": str(SITE.key),
        "ssh_proxy_command": SITE.proxy_command,
    }
    assert "docker" not in config and "available_node_types" not in config
    assert len(swaps.SWAPS) == len({s.what for s in swaps.SWAPS})
    assert all(s.why for s in swaps.SWAPS)


def test_ray_accepts_the_launcher_config_offline(cluster):
    validate_config(prepare_config(swaps.launcher_config(cluster, SITE)))


def test_the_head_gets_what_docker_and_the_instance_gave(cluster):
    env = swaps.head_environment(cluster, SITE)
    assert env["RAY_AUTH_MODE"] == "token"  # from docker.run_options' --env
    resources = json.loads(env["RAY_OVERRIDE_RESOURCES"])
    head = cluster["available_node_types"][cluster["head_node_type"]]["resources"]
    assert resources == {**head, "CPU": head["CPU"] + swaps.HEAD_TRIAL_CPUS}
    assert env["HMTL_S3_ENDPOINT"] == env["MLFLOW_S3_ENDPOINT_URL"] == SITE.s3_endpoint
    assert env["PATH"].startswith(f"{SITE.head_venv / 'bin'}:")
    assert swaps.head_volumes(cluster) == [("/home/ubuntu/hmtl-state", "/home/ray/hmtl-state")]


def test_the_fake_autoscaler_gets_cluster_yamls_worker_types(cluster):
    config = autoscaling.fake_cluster_config(cluster)
    types = config["available_node_types"]
    for name, spec in cluster["available_node_types"].items():
        if name == cluster["head_node_type"]:
            head = types[autoscaling.FAKE_HEAD_NODE_TYPE]
            assert head["resources"] == spec["resources"] and head["max_workers"] == 0
            continue
        for key in ("resources", "labels", "min_workers", "max_workers"):
            assert types[name][key] == spec[key], (name, key)
    assert config["max_workers"] == cluster["max_workers"]
    assert config["upscaling_speed"] == cluster["upscaling_speed"]
    assert config["idle_timeout_minutes"] < cluster["idle_timeout_minutes"]
    validate_config(prepare_config(config))


def test_the_fake_nodes_python_finds_the_project_through_its_editable_install(tmp_path):
    ours = tmp_path / "ours" / "lib" / "python3.11" / "site-packages"
    head = tmp_path / "head" / "lib" / "python3.11" / "site-packages"
    ours.mkdir(parents=True), head.mkdir(parents=True)
    line = "import __editable___hmtl_0_1_0_finder; __editable___hmtl_0_1_0_finder.install()\n"
    (ours / "__editable__.hmtl-0.1.0.pth").write_text(line)
    autoscaling.project_on_head_python(tmp_path / "head", tmp_path / "ours")
    written = sorted(p.name for p in head.iterdir())
    assert written == ["zz-hmtl-editable.pth"] and (head / written[0]).read_text() == line
