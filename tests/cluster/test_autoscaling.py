"""cluster.yaml's worker types under Ray's fake multi-node autoscaler: from zero workers, a
task that asks for a GPU makes the autoscaler launch a `gpu_1x` node (with that type's
resources and price label), the task runs there, and the node goes away after the
(shortened) idle timeout. The head is cluster.yaml's head type: no CPU, so nothing that
asks for CPU or GPU can run on it."""

import json
import time
from pathlib import Path

import pytest

from hmtl.orchestration.platform.rehearsal import autoscaling
from hmtl.orchestration.platform.rehearsal.launcher import Rehearsal
from hmtl.orchestration.platform.rehearsal.timeline import TIMELINE

PROJECT = Path(__file__).resolve().parents[2]

# Runs on the head machine: one GPU task, then watches the node list until it shrinks.
CHECK = """
import json, os, time
import ray
ray.init(address="auto", log_to_driver=False)
def alive():
    return [n for n in ray.nodes() if n["Alive"]]
def say(**kw):
    print(json.dumps({"t": time.time(), **kw}), flush=True)
say(event="nodes", count=len(alive()))
@ray.remote(num_cpus=1, num_gpus=1)
def where():
    return ray.get_runtime_context().get_node_id()
node_id = ray.get(where.remote(), timeout=240)
node = next(n for n in alive() if n["NodeID"] == node_id)
say(event="ran", resources=node["Resources"], labels=node.get("Labels", {}),
    count=len(alive()))
deadline = time.time() + 180
while len(alive()) > 1 and time.time() < deadline:
    time.sleep(1)
say(event="idle", count=len(alive()))
"""


@pytest.fixture(scope="module")
def fake_cluster():
    rehearsal = Rehearsal(PROJECT / "cluster.yaml", PROJECT)
    try:
        rehearsal.open()
        home = rehearsal.head.user_home
        (home / ".ray").mkdir(exist_ok=True)
        (home / ".ray" / "auth_token").write_text(rehearsal.token)
        config = autoscaling.fake_cluster_config(rehearsal.cluster)
        (home / "fake_cluster.yaml").write_text(json.dumps(config))
        (home / "check.py").write_text(CHECK)
        with TIMELINE.step("fake autoscaling cluster: head up (0 workers)"):
            rehearsal.head.run(
                autoscaling.head_start_command(rehearsal.cluster, "/home/ray/fake_cluster.yaml"),
                timeout=180,
            )
        yield rehearsal
    finally:
        rehearsal.close()


def test_a_gpu_task_scales_a_gpu_1x_node_up_and_down(fake_cluster):
    began = time.time()
    result = fake_cluster.head.run("python /home/ray/check.py", check=False, timeout=480)
    events = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            events[event["event"]] = event
    assert "idle" in events, result.stdout[-3000:] + result.stderr[-3000:]
    ran, idle = events["ran"], events["idle"]
    TIMELINE.mark(f"gpu_1x node up, GPU task ran there ({ran['t'] - began:.1f} s after asking)")
    TIMELINE.mark(f"gpu_1x node gone after the idle timeout ({idle['t'] - ran['t']:.1f} s later)")
    assert events["nodes"]["count"] == 1  # the head alone: scaled to zero
    assert ran["count"] == 2
    assert ran["resources"]["GPU"] == 1 and ran["resources"]["CPU"] == 8
    assert ran["labels"].get("hmtl-usd-per-hour") == "1.21"
    assert idle["count"] == 1
