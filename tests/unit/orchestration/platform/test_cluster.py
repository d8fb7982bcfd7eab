import pytest

from hmtl.orchestration.platform.cluster import (
    DRIVER_CPUS,
    InfeasibleError,
    NodeShape,
    autoscaler_node_types,
    plan_resources,
)

LAPTOP = [NodeShape("local", cpus=2, gpus=0)]


def test_single_worker_trials_run_in_tune_and_fill_the_cpus():
    plan = plan_resources(1, 1, 0, LAPTOP)
    assert not plan.use_train and plan.max_concurrent == 2
    assert plan.trial_resources() == {"CPU": 1, "GPU": 0}
    assert plan_resources(1, 1, 0, LAPTOP, cap=1).max_concurrent == 1


def test_multi_worker_trials_use_train_and_leave_room_for_drivers():
    plan = plan_resources(2, 0.5, 0, LAPTOP)
    assert plan.use_train and plan.trial_resources() == {"CPU": DRIVER_CPUS}
    assert plan.max_concurrent == 1  # 2 x (2 x 0.5 + 0.05) > 2 CPUs
    assert plan_resources(1, 1, 0, LAPTOP, force_train=True).max_concurrent == 1


def test_gpu_request_larger_than_any_node_is_refused_with_what_is_missing():
    nodes = [NodeShape("head", 8, 0), NodeShape("g5.xlarge", 4, 1, max_count=4)]
    with pytest.raises(InfeasibleError, match="2 GPUs per worker but the largest node has 1"):
        plan_resources(1, 4, 2, nodes)


def test_scaled_to_zero_cluster_is_judged_by_launchable_node_types(tmp_path):
    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    bootstrap.write_text(
        "available_node_types:\n"
        "  head: {resources: {CPU: 4, GPU: 0}, max_workers: 0}\n"
        "  gpu1: {resources: {CPU: 8, GPU: 1}, min_workers: 0, max_workers: 3}\n"
        "  gpu4: {resources: {CPU: 48, GPU: 4}, min_workers: 0, max_workers: 1}\n"
    )
    types = autoscaler_node_types(str(bootstrap))
    assert [(t.name, t.gpus, t.max_count) for t in types] == [("gpu1", 1, 3), ("gpu4", 4, 1)]
    head = [NodeShape("head", 4, 0)]
    plan = plan_resources(2, 8, 1, head + types)
    # Both workers of a trial on one node (STRICT_PACK): the gpu4 holds two such trials;
    # the gpu1 nodes hold none.
    assert plan.use_train and plan.placement == "STRICT_PACK" and plan.max_concurrent == 2
    # A trial bigger than any node spreads over several (PACK): 3 x gpu1 + 4 on the gpu4.
    assert plan_resources(5, 8, 1, head + types).placement == "PACK"
    assert plan_resources(2, 8, 1, head + types[:1]).placement == "PACK"
    assert plan_resources(2, 8, 1, head + types[:1]).max_concurrent == 1
    assert autoscaler_node_types(str(tmp_path / "missing.yaml")) == []


def test_trial_paths_resolve_against_the_sweep_folder(tmp_path):
    from hmtl.orchestration.sweep.trial import resolve_paths
    from hmtl.trainables.config import build_config

    cfg = build_config(
        {
            "data": {"source": "data/fer", "cache_dir": "hmtl-runs/datasets"},
            "model": {"pretrained": "w/resnet18.pt"},
        }
    )
    out = resolve_paths(cfg, str(tmp_path))
    assert out.data.source == str(tmp_path / "data/fer")
    assert out.data.cache_dir == str(tmp_path / "hmtl-runs/datasets")
    assert out.model.pretrained == str(tmp_path / "w/resnet18.pt")
    s3 = build_config({"data": {"source": "s3://b/x"}, "model": {"pretrained": "/abs/w.pt"}})
    same = resolve_paths(s3, str(tmp_path))
    assert same.data.source == "s3://b/x" and same.model.pretrained == "/abs/w.pt"
    assert resolve_paths(cfg, str(tmp_path / "absent")) is cfg


def test_drivers_ask_for_the_head_resource_on_a_launched_cluster():
    head = NodeShape("head", cpus=0, gpus=0)
    gpus = NodeShape("gpu_1x", cpus=8, gpus=1, max_count=4)
    plan = plan_resources(2, 4, 1, [head, gpus], driver_resource=True)
    assert plan.trial_resources() == {"hmtl_driver": 0.01}
    assert plan.max_concurrent == 2  # 4 nodes x 1 GPU, 2 workers per trial
    single = plan_resources(1, 8, 1, [head, gpus], driver_resource=True)
    assert single.trial_resources() == {"CPU": 8, "GPU": 1}  # trains, so never on the head


def test_local_storage_is_refused_on_an_autoscaling_cluster(tmp_path, monkeypatch):
    from helpers import tiny_space

    from hmtl.orchestration.sweep.run import preflight
    from hmtl.orchestration.sweep.space import SpaceError

    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    bootstrap.write_text(
        "available_node_types:\n  gpu: {resources: {CPU: 8, GPU: 1}, max_workers: 2}\n"
    )
    monkeypatch.setenv("HMTL_BOOTSTRAP_CONFIG", str(bootstrap))
    with pytest.raises(SpaceError, match="local folder on an autoscaling cluster"):
        preflight(tiny_space(tmp_path), str(tmp_path / "runs"))
    monkeypatch.setenv("HMTL_BOOTSTRAP_CONFIG", str(tmp_path / "absent.yaml"))
    preflight(tiny_space(tmp_path), str(tmp_path / "runs"))
