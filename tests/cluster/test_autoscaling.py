"""cluster.yaml's worker types under Ray's fake multi-node autoscaler: from zero workers, a
task that asks for a GPU makes the autoscaler launch a `gpu_1x` node (with that type's
resources and price label), the task runs there, and the node goes away after the
(shortened) idle timeout. The head is cluster.yaml's head type: no CPU, so nothing that
asks for CPU or GPU can run on it.

The full rehearsal (`rehearsal` marker) adds sweeps run on the head with `hmtl sweep
--address auto`, as a submitted job runs them: one whose trials each ask for a GPU scales
`gpu_1x` nodes up from zero and back down, and a two-worker trial lands on `gpu_4x`. The
trials train on the CPU because the rehearsal says so (`runtime.device: cpu`): the fake
nodes advertise GPUs they do not have. Where each trial ran is read from Ray's state API."""

import json
import sys
import time
from pathlib import Path

import pytest

from hmtl.orchestration.platform.rehearsal import autoscaling, swaps
from hmtl.orchestration.platform.rehearsal.launcher import BUCKET, Rehearsal
from hmtl.orchestration.platform.rehearsal.timeline import TIMELINE
from hmtl.orchestration.sweep.smoke import smoke
from hmtl.orchestration.sweep.space import load_space, validate_space

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

# Runs on the head: the command given (a sweep) while a thread notes nodes coming and going
# and where Tune's trial actors and Train's workers run (Ray's state API); then waits for
# the cluster to scale back to the head alone.
WATCH = """
import json, subprocess, sys, threading, time
import ray
from ray.util.state import list_actors
ray.init(address="auto", log_to_driver=False)
def say(**kw):
    print(json.dumps({"t": time.time(), **kw}), flush=True)
def alive():
    return {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
seen, placed, stop = {}, set(), threading.Event()
def watch():
    while not stop.is_set():
        nodes = alive()
        for nid, n in nodes.items():
            if nid not in seen:
                seen[nid] = n
                say(event="up", node=nid[-6:], gpus=n["Resources"].get("GPU", 0),
                    cpus=n["Resources"].get("CPU", 0),
                    price=n.get("Labels", {}).get("hmtl-usd-per-hour"))
        for nid in [nid for nid in seen if nid not in nodes and nid not in placed]:
            placed.add(nid)
            say(event="gone", node=nid[-6:])
        try:
            actors = list_actors(filters=[("state", "=", "ALIVE")], detail=True,
                                 raise_on_missing_output=False)
        except Exception:
            actors = []
        for a in actors:
            key = (a.actor_id, a.node_id)
            if a.class_name in ("ImplicitFunc", "RayTrainWorker") and key not in placed:
                placed.add(key)
                n = nodes.get(a.node_id) or seen.get(a.node_id) or {"Resources": {}}
                say(event="actor", cls=a.class_name, node=a.node_id[-6:],
                    gpus=n["Resources"].get("GPU", 0))
        time.sleep(0.5)
def lose_a_node(prefix):
    # Spot loss: once the trial has a checkpoint in the bucket, SIGKILL every process of
    # the GPU node its Tune actor runs on (raylet, agents, workers), as a reclaimed VM.
    import boto3, os, signal
    s3 = boto3.client("s3", endpoint_url=os.environ["HMTL_S3_ENDPOINT"])
    bucket, _, key = prefix.removeprefix("s3://").partition("/")
    while not stop.is_set():
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        done = [o for o in listed if "/checkpoint_" in o["Key"]]
        trial = [a for a in list_actors(filters=[("state", "=", "ALIVE")],
                                        raise_on_missing_output=False)
                 if a.class_name == "ImplicitFunc"]
        if done and trial:
            node = trial[0].node_id
            parent, hit = {}, set()
            for p in os.listdir("/proc"):
                if not p.isdigit():
                    continue
                try:
                    cmd = open(f"/proc/{p}/cmdline", "rb").read()
                    stat = open(f"/proc/{p}/stat").read()
                except OSError:
                    continue
                parent[int(p)] = int(stat.rsplit(")", 1)[1].split()[1])
                if node.encode() in cmd:
                    hit.add(int(p))
            # ...and what they started: the node's workers (the trial among them).
            grown = True
            while grown:
                more = {pid for pid, ppid in parent.items() if ppid in hit} - hit
                hit |= more
                grown = bool(more)
            for pid in hit:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            say(event="killed", node=node[-6:], processes=len(hit),
                checkpoints=len({o["Key"].split("/checkpoint_")[1][:6] for o in done}))
            return
        time.sleep(0.5)
threading.Thread(target=watch, daemon=True).start()
if len(sys.argv) > 2 and sys.argv[1] == "--kill-after-checkpoint":
    threading.Thread(target=lose_a_node, args=(sys.argv[2],), daemon=True).start()
    sys.argv[1:3] = []
say(event="start", count=len(alive()))
rc = subprocess.run(sys.argv[1:]).returncode
say(event="end", rc=rc, count=len(alive()))
deadline = time.time() + 180
while len(alive()) > 1 and time.time() < deadline:
    time.sleep(1)
time.sleep(1)
stop.set()
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
        (home / "watch.py").write_text(WATCH)
        (home / "runs.py").write_text(RUNS)
        autoscaling.project_on_head_python(rehearsal.head.venv, Path(sys.prefix))
        # What `docker run --volume` would have made (the head's state folder, Optuna's db).
        folders = " ".join(host for host, _ in swaps.head_volumes(rehearsal.cluster))
        rehearsal.head.run(f"mkdir -p {folders}")
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


# Runs on the head after a sweep: each trial run's epochs as MLflow has them (step = epoch)
# and its last cost metrics.
RUNS = """
import json, sys
import mlflow
client = mlflow.MlflowClient()
experiment = client.get_experiment_by_name(sys.argv[1])
for run in client.search_runs([experiment.experiment_id]):
    steps = [m.step for m in client.get_metric_history(run.info.run_id, sys.argv[2])]
    if steps:
        print(json.dumps({"run": run.info.run_name, "epochs": sorted(steps),
                          **{k: v for k, v in run.data.metrics.items()
                             if k.startswith(("cost/", "time/"))}}))
"""


def gpu_space(name: str, workers: int, samples: int, epochs: int = 2) -> str:
    """quickstart's smoke space (600 faces, small_cnn, 2 epochs, device cpu), its trials each
    asking for `workers` workers of 1 CPU and 1 GPU, one at a time, as JSON (valid YAML)."""
    small = smoke(load_space("quickstart"), Path("/home/ray/scratch"))
    raw = small.model_dump(mode="json", exclude={"source"})
    raw.update(
        name=name, num_samples=samples, max_concurrent_trials=1, scheduler=None,
        resources={"workers_per_trial": workers, "cpus_per_worker": 1.0, "gpus_per_worker": 1.0},
    )  # fmt: skip
    raw["base"]["schedule"]["epochs"] = epochs
    assert validate_space(raw).base_tree()["runtime"]["device"] == "cpu"
    return json.dumps(raw)


ENV = "HMTL_BOOTSTRAP_CONFIG=/home/ray/fake_cluster.yaml MLFLOW_TRACKING_URI=sqlite:////home/ray/mlflow.db"


def sweep_on_head(
    cluster, name: str, workers: int, samples: int, epochs: int = 2, kill: bool = False
) -> tuple[list[dict], str]:
    """`hmtl sweep` on the fake cluster's head, watched (WATCH): the watch's events, and
    the tail of the sweep's output."""
    home = cluster.head.user_home
    (home / f"{name}.yaml").write_text(gpu_space(name, workers, samples, epochs))
    storage = f"s3://{BUCKET}/autoscaling"
    killer = f"--kill-after-checkpoint {storage}/sweeps/{name} " if kill else ""
    result = cluster.head.run(
        f"cd /home/ray && {ENV} python /home/ray/watch.py {killer}python -m hmtl sweep "
        f"/home/ray/{name}.yaml --address auto --storage {storage} --json",
        check=False, timeout=900,
    )  # fmt: skip
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"t"')]
    ends = [e for e in events if e["event"] == "end"]
    output = result.stdout[-3000:] + result.stderr[-4000:]
    assert ends and ends[0]["rc"] == 0, output
    return events, output


def mark(began: float, events: list[dict], label: str) -> None:
    """The watch's events on the rehearsal's timeline, in seconds since the test began."""
    head = {e["node"] for e in events if e["event"] == "up" and e["t"] - events[0]["t"] < 1}
    for e in events:
        at = f"at +{e['t'] - began:.1f} s"
        if e["event"] == "up" and e["node"] not in head:
            TIMELINE.mark(f"{label}: {e['gpus']:g}-GPU node {e['node']} up {at}")
        elif e["event"] == "gone":
            TIMELINE.mark(f"{label}: node {e['node']} gone {at}")
        elif e["event"] == "actor":
            what = "trial" if e["cls"] == "ImplicitFunc" else "Train worker"
            TIMELINE.mark(f"{label}: {what} placed on {e['gpus']:g}-GPU node {e['node']} {at}")
        elif e["event"] == "killed":
            TIMELINE.mark(f"{label}: node {e['node']} killed {at}")
        elif e["event"] in ("start", "end", "idle"):
            TIMELINE.mark(f"{label}: sweep {e['event']} {at} ({e['count']} nodes alive)")


@pytest.mark.rehearsal
def test_a_gpu_sweep_scales_gpu_1x_nodes_from_zero_and_back(fake_cluster):
    began = time.time()
    events, _ = sweep_on_head(fake_cluster, "gpu-1x", workers=1, samples=2)
    mark(began, events, "1-GPU sweep")
    start = next(e for e in events if e["event"] == "start")
    assert start["count"] == 1  # the head alone
    ups = [e for e in events if e["event"] == "up" and e["gpus"]]
    assert ups and all(e["gpus"] == 1 and e["price"] == "1.21" for e in ups), ups
    trials = [e for e in events if e["event"] == "actor" and e["cls"] == "ImplicitFunc"]
    assert len(trials) >= 1 and all(e["gpus"] == 1 for e in trials), trials
    assert events[-1]["event"] == "idle" and events[-1]["count"] == 1


@pytest.mark.rehearsal
def test_a_two_worker_trial_lands_on_gpu_4x(fake_cluster):
    began = time.time()
    events, _ = sweep_on_head(fake_cluster, "gpu-4x", workers=2, samples=1)
    mark(began, events, "2-worker trial")
    workers = [e for e in events if e["event"] == "actor" and e["cls"] == "RayTrainWorker"]
    assert len(workers) == 2, events
    assert {e["gpus"] for e in workers} == {4} and len({e["node"] for e in workers}) == 1
    assert events[-1]["event"] == "idle" and events[-1]["count"] == 1


@pytest.mark.rehearsal
def test_a_trial_whose_node_is_lost_continues_from_s3_on_another(fake_cluster):
    began = time.time()
    events, output = sweep_on_head(fake_cluster, "spot", workers=1, samples=1, epochs=3, kill=True)
    mark(began, events, "spot loss")
    killed = [e for e in events if e["event"] == "killed"]
    assert len(killed) == 1 and killed[0]["processes"] > 0, events
    trials = [e for e in events if e["event"] == "actor" and e["cls"] == "ImplicitFunc"]
    assert len({e["node"] for e in trials}) >= 2, output  # restarted on another node
    assert trials[-1]["node"] != killed[0]["node"] and trials[-1]["gpus"] >= 1
    result = fake_cluster.head.run(
        f"{ENV} python /home/ray/runs.py spot val/balanced_accuracy", timeout=120
    )
    runs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    TIMELINE.mark(f"spot loss: MLflow runs {runs}")
    assert len(runs) == 1 and runs[0]["epochs"] == [1, 2, 3], runs
    # One GPU held: GPU-seconds are the wall time counted (which resumes from the
    # checkpoint's count) plus the work lost with the node, also logged on its own.
    lost = runs[0]["cost/lost_device_seconds"]
    assert lost > 0 and runs[0]["time/lost_seconds"] == pytest.approx(lost)
    assert runs[0]["cost/device_seconds"] == pytest.approx(runs[0]["time/wall_seconds"] + lost)
    assert events[-1]["event"] == "idle" and events[-1]["count"] == 1
