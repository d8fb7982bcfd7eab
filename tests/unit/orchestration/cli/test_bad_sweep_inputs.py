"""`hmtl sweep`, `resume`, `submit`, `logs`, `stop` on bad input: one `hmtl: error:` line,
exit 2, before Ray starts or any request is sent (no header line, no token warning)."""

import os

import pytest
import ray
import torch
import yaml
from helpers import refused

from hmtl.orchestration.platform.cluster import InfeasibleError, check_local_resources, local_node
from hmtl.trainables.models import build_backbone


def space_file(tmp_path, resources=None, base=None):
    raw = {
        "name": "bad-inputs",
        "num_samples": 2,
        "resources": resources or {},
        "base": base or {"runtime": {"device": "cpu"}},
        "space": {"optim.lr": "loguniform(1e-4, 1e-2)"},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_local_node_is_the_machines_own_cpus_and_gpus():
    node = local_node()
    assert node.cpus == len(os.sched_getaffinity(0))
    assert node.gpus == torch.cuda.device_count()
    assert local_node(num_cpus=3).cpus == 3


def test_local_check_passes_what_fits_and_names_what_does_not():
    plan = check_local_resources(2, 1, 0, num_cpus=4)
    assert plan.use_train and plan.max_concurrent == 1
    with pytest.raises(InfeasibleError, match="this machine: 4 CPUs"):
        check_local_resources(1, 8, 0, num_cpus=4)


@pytest.mark.parametrize(
    ("resources", "needle"),
    [
        ({"gpus_per_worker": 1}, "GPUs per worker"),
        ({"workers_per_trial": 64}, "64 workers"),
        ({"cpus_per_worker": 64}, "64 CPUs per worker"),
    ],
)
def test_infeasible_resources_are_refused_before_local_ray_starts(tmp_path, resources, needle):
    node = local_node()
    gpus = resources.get("gpus_per_worker", 0)
    if (gpus and node.gpus >= gpus) or node.cpus >= 64:
        pytest.skip("this machine could hold the request")
    base = {"runtime": {"device": "cuda" if "gpus_per_worker" in resources else "cpu"}}
    space = space_file(tmp_path, resources, base)
    storage = tmp_path / "runs"
    line = refused(["sweep", str(space), "--storage", str(storage)], needle)
    assert str(space) in line and "this machine" in line
    assert not ray.is_initialized()
    assert not storage.exists()


def test_sweep_preflight_loads_the_pretrained_weights(tmp_path):
    weights = tmp_path / "resnet18.pt"
    torch.save(build_backbone("resnet18", 1).state_dict(), weights)
    space = space_file(tmp_path, base={"model": {"pretrained": str(weights)}})
    refused(
        ["sweep", str(space), "--storage", str(tmp_path / "runs")],
        f"model.pretrained: {weights}: weights of another architecture",
    )
    weights.write_bytes(b"\x00garbage" * 100)
    refused(["sweep", str(space), "--storage", str(tmp_path / "runs")], "not a loadable torch file")
    assert not ray.is_initialized()
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("smoke", "needle"), [([], "a file is in the way"), (["--smoke"], "is a file, not a folder")]
)
def test_no_header_line_before_a_storage_refusal(tmp_path, smoke, needle):
    (tmp_path / "taken").write_text("x\n")
    space = space_file(tmp_path)
    refused(["sweep", str(space), "--storage", str(tmp_path / "taken"), *smoke], needle)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sweep", "quickstart", "--address", "not-a-host"], "--address not-a-host"),
        (["sweep", "quickstart", "--address", "host:port"], "--address host:port"),
        (["sweep", "quickstart", "--tracking-uri", "bogus://x"], "--tracking-uri bogus://x"),
        (["sweep", "quickstart", "--tracking-uri", "./mlruns"], "not an MLflow tracking URI"),
        (["resume", "hmtl-runs/sweeps/x", "--address", "nope"], "--address nope"),
    ],
)
def test_sweep_and_resume_refuse_a_bad_address_or_tracking_uri(args, needle):
    refused(args, needle)
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "quickstart", "--address", "not-a-url"],
        ["logs", "raysubmit_1", "--address", "not-a-url"],
        ["stop", "raysubmit_1", "--address", "host:abc"],
        ["stop", "raysubmit_1", "--address", "ftp://host:8265"],
    ],
)
def test_jobs_commands_reject_a_non_url_before_any_token_warning(args, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "a-token-that-would-be-warned-about")
    line = refused(args, f"--address {args[-1]}: give auto, HOST:PORT or ray://HOST:PORT")
    assert "warning" not in line


def test_local_check_is_only_for_the_embedded_default(tmp_path, monkeypatch):
    from helpers import tiny_space

    from hmtl.orchestration.platform.cluster import check_local

    space = tiny_space(tmp_path, resources={"cpus_per_worker": 4096})
    with pytest.raises(InfeasibleError, match="4096 CPUs per worker"):
        check_local(space, None)
    check_local(space, "auto")  # a cluster is judged once joined
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    check_local(space, None)  # ray.init joins that cluster


def test_sweep_from_a_run_its_mlflow_cannot_have(tmp_path):
    # A fresh storage folder has no MLflow database yet: no run can be found there, and
    # looking must not create one.
    space = space_file(tmp_path, base={"model": {"pretrained": "runs:/0123abcd"}})
    storage = tmp_path / "runs"
    line = refused(["sweep", str(space), "--storage", str(storage)], "runs:/0123abcd: no MLflow")
    assert str(space) in line and "--tracking-uri" in line
    assert not ray.is_initialized()
    assert not storage.exists()
