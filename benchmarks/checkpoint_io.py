"""Checkpoint I/O against S3: upload cost, how long training waits, and time to resume.

Starts its own `moto_server` on a free 127.0.0.1 port (fake AWS credentials set in the
environment first, so nothing real is ever used, and before Ray starts, so Ray's workers
inherit them), creates a bucket with boto3, and measures three things:

1. Save-and-upload of one checkpoint, ours vs plain boto3, side by side (one unmeasured
   warm-up round, then --reps rounds with the order rotated each round; medians). The
   checkpoint is the state `train` saves (model + AdamW state after one step + scheduler +
   RNG + config + metrics, and the dataset card beside it), built for small_cnn width 32
   (48 px grey) and resnet18 (112 px RGB); gradients are random, which leaves the sizes
   exact.
     ours:  `save_checkpoint` into a temp folder, then what a Tune function trial does on
            `ray.tune.report(..., checkpoint=Checkpoint.from_directory(folder))`: Ray's own
            `StorageContext.persist_current_checkpoint` (ray/train/_internal/storage.py:
            validation-marker check, `create_dir`, then `pyarrow.fs.copy_files` with 64 MiB
            chunks, `use_threads=False` for S3), onto the S3FileSystem `Store.open` builds.
     put:   `torch.save` of the same state to bytes, then boto3 `put_object` of those bytes
            and of the card to the same endpoint (one PUT each): the plain baseline.
     multipart: the same with boto3's `upload_fileobj` for checkpoint.pt (8 MiB parts,
            threads), since pyarrow uploads as multipart too (so the ratio can be told
            apart from what the S3 server charges for multipart).
   Printed: MB, median seconds (serialize + upload) and the ratios ours/put and
   ours/multipart. Against moto the absolute upload times are the server's (Python,
   loopback); the ratio is the figure, and only for this endpoint.

2. Seconds the training loop is blocked per checkpoint: from just before `save_checkpoint`
   to the return of `session.report`, for `train` on a tiny synthetic config (small_cnn
   width 32, 48 px grey, --faces faces, --epochs epochs, one torch thread).
     local: a `LocalSession` subclass timing `report`, with `hmtl.trainables.train.save_checkpoint`
            wrapped to note when saving starts (measured directly, in this process).
     Ray:   one real Tune trial with S3 storage through `run_sweep` (1 trial, no scheduler,
            tracking in sqlite:///<tmp>/mlflow.db), measured two ways:
            difference - `time/train_s` advances from one report to the next by one epoch
              of training + evaluation plus the previous epoch's checkpoint + report, so
              mean(epoch-to-epoch advance with a checkpoint every epoch) minus mean(the same
              with `runtime.checkpoint_every` > epochs) is the blocked time per checkpoint.
              Epoch 1 is left out; only (epochs - 1) differences per run, so it is noisy.
            direct - the same save/report wrap, applied inside the trial's own process (the
              sweep's trial function is wrapped before the sweep starts; no library file is
              edited), logged to a file; reported for the checkpoint-every-epoch run.
   The local run is also timed with checkpoint_every > epochs, so the difference method
   can be checked against the direct figure on the same machine in the same run.

3. Time from `resume_sweep` to the first resumed epoch report. Ray is started first (after
   the fake AWS environment is set) so Ray start-up is not counted. A sweep with S3 storage
   (1 trial, --resume-epochs epochs) runs in a subprocess (`python -m hmtl.orchestration.cli.main
   sweep ... --address <this Ray>`); once a checkpoint is in the bucket AND Tune has since
   rewritten its experiment state there (so the state names that checkpoint; Tune writes
   it about every 10 s), the subprocess is SIGKILLed. `resume_sweep(<sweep s3 URI>)` is
   then called here; a Tune Callback records the first `on_trial_result`. `resume_sweep`
   takes no callbacks, so `Tuner.restore` is wrapped for this call to append the callback
   (and verbose=0) to the restored RunConfig. Printed: seconds from the call to the first
   report, split into call -> trial start and trial start -> report, and the part of the
   latter spent inside `train` (its `time/train_s`: dataset load, checkpoint download and
   load, one epoch, evaluation).

    python benchmarks/checkpoint_io.py [--reps 5] [--faces 2000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ray.tune import Callback

# Fake, distinctive credentials (as tests/integration/conftest.py); set before anything
# reads the AWS chain and before Ray starts, so no real credential is ever used.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAHMTLBENCHKEY0001",
    "AWS_SECRET_ACCESS_KEY": "hmtl-bench-secret-0001",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
UNSET = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "HMTL_S3_ENDPOINT")
BUCKET = "hmtl-bench"


def fake_aws_env() -> None:
    for key in UNSET:
        os.environ.pop(key, None)
    os.environ.update(FAKE_AWS)


# ---------------------------------------------------------------------------- S3 server


def start_moto(root: Path) -> tuple[subprocess.Popen, str]:
    exe = Path(sys.executable).with_name("moto_server")
    exe = str(exe) if exe.exists() else shutil.which("moto_server")
    if exe is None:
        sys.exit("moto_server not found (install moto[server])")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(root / "moto_server.log", "wb") as out:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                sys.exit(f"moto_server did not start: {(root / 'moto_server.log').read_text()}")
            time.sleep(0.05)


def s3_uri(endpoint: str, prefix: str) -> str:
    return f"s3://{BUCKET}/{prefix}?endpoint_override={endpoint}"


# ----------------------------------------------------------- 1. save-and-upload vs boto3


def checkpoint_state(backbone: str, size: int, channels: int, width: int) -> tuple[dict, dict]:
    """The state `train` saves after one optimizer step, and the dataset card beside it."""
    import torch

    from hmtl.trainables.checkpoint import rng_state
    from hmtl.trainables.config import build_config
    from hmtl.trainables.data.dataset import DatasetInfo
    from hmtl.trainables.data.prepared import EXPRESSIONS
    from hmtl.trainables.models import build_backbone
    from hmtl.trainables.network import FaceModel
    from hmtl.trainables.optim import make_optimizer, make_scheduler
    from hmtl.trainables.tasks import build_tasks

    cfg = build_config(
        {
            "data": {"image_size": size, "channels": channels},
            "model": {"backbone": backbone, "width": width},
            "runtime": {"device": "cpu"},
        }
    )
    card = {"name": "bench", "classes": list(EXPRESSIONS), "fingerprint": "0" * 16}
    info = DatasetInfo(EXPRESSIONS, (1000,) * 8, (), "0" * 16, "synthetic", card)
    torch.manual_seed(0)
    net = build_backbone(cfg.model.backbone, cfg.data.channels, cfg.model.width)
    model = FaceModel(net, build_tasks(cfg, info, net.feature_dim))
    optimizer = make_optimizer(cfg.optim, model)
    scheduler = make_scheduler(cfg.schedule, optimizer, steps_per_epoch=100)
    for param in model.parameters():
        param.grad = torch.randn_like(param) * 1e-3
    optimizer.step()
    scheduler.step()
    metrics = {"epoch": 1, "lr": 1e-3, "train/loss": 1.9, "val/accuracy": 0.3}
    metrics["val/confusion"] = [[10] * 8 for _ in range(8)]
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": 1,
        "rng": rng_state(),
        "config": cfg.model_dump(),
        "metrics": metrics,
        "history": [{k: v for k, v in metrics.items() if isinstance(v, float | int)}],
        "dataset": "0" * 16,
    }
    return state, card


UPLOAD_CASES = (
    ("small_cnn w32, 48 px grey", "small_cnn", 48, 1, 32),
    ("resnet18, 112 px RGB", "resnet18", 112, 3, 32),
)


def bench_upload(endpoint: str, reps: int) -> list[tuple[str, float, dict]]:
    import boto3

    from hmtl.orchestration.platform.store import Store

    client = boto3.client("s3", endpoint_url=endpoint)
    store = Store.open(s3_uri(endpoint, "bench/upload"))
    return [upload_case(client, store, reps, *case) for case in UPLOAD_CASES]


def upload_case(
    client, store, reps: int, label: str, backbone: str, size: int, channels: int, width: int
) -> tuple[str, float, dict]:
    import torch
    from ray.train._internal.storage import StorageContext
    from ray.tune import Checkpoint

    from hmtl.trainables.checkpoint import save_checkpoint

    state, card = checkpoint_state(backbone, size, channels, width)
    card_text = json.dumps(card, indent=2)
    # What a Tune trial's session holds: the trial's place under the experiment on S3.
    storage = StorageContext(
        storage_path=store.path("ray"),
        experiment_dir_name=backbone,
        storage_filesystem=store.filesystem,
        trial_dir_name="trial-bench",
    )
    nbytes: list[int] = []

    def ours() -> tuple[float, float]:
        folder = tempfile.mkdtemp(prefix="hmtl-ckpt-")
        try:
            start = time.perf_counter()
            save_checkpoint(folder, state)
            Path(folder, "card.json").write_text(card_text)
            saved = time.perf_counter()
            storage._update_checkpoint_index({})  # as ray.train._internal.session.report
            storage.persist_current_checkpoint(Checkpoint.from_directory(folder))
            done = time.perf_counter()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        store.filesystem.delete_dir(storage.checkpoint_fs_path)
        return saved - start, done - saved

    def plain(index: int, multipart: bool = False) -> tuple[float, float]:
        prefix = f"bench/upload/boto3/{backbone}/checkpoint_{index:06d}"
        start = time.perf_counter()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        body = buffer.getvalue()
        saved = time.perf_counter()
        if multipart:  # boto3's managed transfer: 8 MiB parts, 10 threads
            client.upload_fileobj(io.BytesIO(body), BUCKET, f"{prefix}/checkpoint.pt")
        else:
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/checkpoint.pt", Body=body)
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/card.json", Body=card_text.encode())
        done = time.perf_counter()
        names = ("checkpoint.pt", "card.json")
        client.delete_objects(
            Bucket=BUCKET, Delete={"Objects": [{"Key": f"{prefix}/{n}"} for n in names]}
        )
        nbytes.append(len(body))
        return saved - start, done - saved

    runs = {
        "ours": ours,
        "put": lambda i: plain(i),
        "multipart": lambda i: plain(i, multipart=True),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for rep in range(reps + 1):  # round 0 warms up: connections, S3 clients, allocator
        order = list(runs)[rep % 3 :] + list(runs)[: rep % 3]  # rotate, so drift hits all
        for name in order:
            sample = runs[name]() if name == "ours" else runs[name](rep)
            if rep:
                samples[name].append(sample)
    mb = (nbytes[-1] + len(card_text)) / 1e6
    return label, mb, {name: summarize(v) for name, v in samples.items()}


def summarize(samples: list[tuple[float, float]]) -> dict:
    return {
        "save": statistics.median(s for s, _ in samples),
        "upload": statistics.median(u for _, u in samples),
        "total": statistics.median(s + u for s, u in samples),
    }


# ------------------------------------------------------ 2. blocked time per checkpoint


def train_tree(root: Path, faces: int, epochs: int, checkpoint_every: int = 1) -> dict:
    return {
        "data": {
            "cache_dir": str(root / "datasets"),
            "image_size": 48,
            "batch_size": 64,
            "synthetic": {"num_samples": faces},
        },
        "model": {"backbone": "small_cnn", "width": 32},
        "schedule": {"epochs": epochs, "warmup_epochs": 0.5},
        "runtime": {
            "device": "cpu",
            "num_threads": 1,
            "seed": 0,
            "checkpoint_every": checkpoint_every,
        },
    }


def space_dict(name: str, tree: dict) -> dict:
    return {
        "name": name,
        "num_samples": 1,
        "max_concurrent_trials": 1,
        "scheduler": None,
        "search": {"sampler": "random", "seed": 0},
        "base": tree,
        "space": {"optim.lr": "loguniform(1e-3, 1e-2)"},
    }


def timed_train(root: Path, tree: dict, name: str) -> tuple[list[float], list[float]]:
    """`train` under a LocalSession: blocked seconds per checkpoint, `time/train_s` per epoch."""
    import torch

    import hmtl.trainables.train as train_module
    from hmtl.trainables.config import build_config
    from hmtl.trainables.session import LocalSession

    started: list[float] = []
    blocked: list[float] = []
    real_save = train_module.save_checkpoint

    def save(folder, state):
        started.append(time.perf_counter())
        return real_save(folder, state)

    class TimedSession(LocalSession):
        def report(self, metrics, checkpoint_dir=None):
            super().report(metrics, checkpoint_dir=checkpoint_dir)
            if checkpoint_dir is not None:
                blocked.append(time.perf_counter() - started[-1])

    threads = torch.get_num_threads()
    train_module.save_checkpoint = save
    try:
        session = TimedSession(root / "local" / name, log=None)
        train_module.train(build_config(tree), session)
    finally:
        train_module.save_checkpoint = real_save
        torch.set_num_threads(threads)
    return blocked, [m["time/train_s"] for m in session.history]


class Reports(Callback):
    """A Tune Callback keeping (wall time, epoch, time/train_s) of every result."""

    def __init__(self) -> None:
        self.results: list[tuple[float, int, float]] = []
        self.trial_started: float | None = None

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.trial_started is None:
            self.trial_started = time.perf_counter()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.append(
            (time.perf_counter(), int(result["epoch"]), float(result["time/train_s"]))
        )


def instrument_trials(log_path: str):
    """Wrap `hmtl.orchestration.sweep.run.make_trial` so each trial times save -> report
    return in its own process and appends it to `log_path`. Returns a function that undoes the
    wrap."""
    import hmtl.orchestration.sweep.run as sweep_module

    original = sweep_module.make_trial

    def make_trial(*args, **kwargs):
        inner = original(*args, **kwargs)

        def run_trial(params):
            import hmtl.orchestration.sweep.trial as trial_module
            import hmtl.trainables.train as train_module

            real_save = train_module.save_checkpoint
            real_report = trial_module.TuneSession.report
            started: list[float] = []

            def save(folder, state):
                started.append(time.perf_counter())
                return real_save(folder, state)

            def report(self, metrics, checkpoint_dir=None):
                real_report(self, metrics, checkpoint_dir=checkpoint_dir)
                if checkpoint_dir is not None:
                    row = {
                        "epoch": metrics["epoch"],
                        "blocked_s": time.perf_counter() - started[-1],
                    }
                    with open(log_path, "a") as f:
                        f.write(json.dumps(row) + "\n")

            train_module.save_checkpoint = save
            trial_module.TuneSession.report = report
            try:
                inner(params)
            finally:
                train_module.save_checkpoint = real_save
                trial_module.TuneSession.report = real_report

        return run_trial

    sweep_module.make_trial = make_trial
    return lambda: setattr(sweep_module, "make_trial", original)


def sweep_train_s(root: Path, endpoint: str, name: str, tree: dict) -> list[float]:
    """One single-trial sweep on S3 storage; `time/train_s` of each report, in epoch order."""
    from hmtl.orchestration.sweep.run import run_sweep
    from hmtl.orchestration.sweep.space import validate_space

    reports = Reports()
    run_sweep(
        validate_space(space_dict(name, tree)),
        s3_uri(endpoint, "bench/blocked"),
        f"sqlite:///{root / 'mlflow.db'}",
        verbose=0,
        callbacks=[reports],
    )
    return [train_s for _, _, train_s in sorted(reports.results, key=lambda r: r[1])]


def advance(train_s: list[float]) -> list[float]:
    """Epoch-to-epoch advances of `time/train_s`, epoch 1 left out."""
    return [b - a for a, b in itertools.pairwise(train_s)]


def bench_blocked(root: Path, endpoint: str, faces: int, epochs: int) -> dict:
    never = epochs + 1
    local_blocked, local_ck = timed_train(root, train_tree(root, faces, epochs), "every")
    _, local_none = timed_train(root, train_tree(root, faces, epochs, never), "none")
    log = root / "trial-blocked.jsonl"
    undo = instrument_trials(str(log))
    try:
        ray_ck = sweep_train_s(root, endpoint, "blocked-every", train_tree(root, faces, epochs))
        direct = [json.loads(line)["blocked_s"] for line in log.read_text().splitlines()]
        ray_none = sweep_train_s(
            root, endpoint, "blocked-none", train_tree(root, faces, epochs, never)
        )
    finally:
        undo()
    return {
        "local_direct": local_blocked,
        "local_diff": (advance(local_ck), advance(local_none)),
        "ray_direct": direct,
        "ray_diff": (advance(ray_ck), advance(ray_none)),
    }


# ------------------------------------------------------------------------ 3. resume


def list_keys(client, prefix: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    return keys


def interrupt_sweep(root: Path, endpoint: str, faces: int, epochs: int, address: str) -> dict:
    """Run a sweep in a subprocess and SIGKILL it once a checkpoint is recorded in Tune's
    experiment state on S3. Returns what was in the bucket at the kill."""
    import boto3
    import yaml

    name = "resume-bench"
    spec = root / "resume.yaml"
    spec.write_text(yaml.safe_dump(space_dict(name, train_tree(root, faces, epochs))))
    command = [
        sys.executable,
        "-m",
        "hmtl",
        "sweep",
        str(spec),
        "--storage",
        s3_uri(endpoint, "bench/resume"),
        "--tracking-uri",
        f"sqlite:///{root / 'mlflow-resume.db'}",
        "--address",
        address,
    ]
    client = boto3.client("s3", endpoint_url=endpoint)
    prefix = f"bench/resume/sweeps/{name}/"
    with open(root / "sweep-subprocess.log", "wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=root,
            env={**os.environ, "RAY_AIR_NEW_OUTPUT": "0"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    began = time.monotonic()
    state_at_checkpoint = None
    try:
        while True:
            if proc.poll() is not None:
                sys.exit(f"the sweep ended before it could be interrupted; see {out.name}")
            if time.monotonic() - began > 180:
                sys.exit(f"no checkpoint recorded in 180 s; see {out.name}")
            keys = list_keys(client, prefix)
            checkpoints = sorted(k for k in keys if k.endswith("/checkpoint.pt"))
            states = {k: v for k, v in keys.items() if "experiment_state" in k}
            if checkpoints and state_at_checkpoint is None:
                state_at_checkpoint, seen = states, time.monotonic()
            elif checkpoints and states != state_at_checkpoint:
                break  # Tune rewrote its state after the checkpoint landed
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait()
    return {
        "name": name,
        "checkpoints": [k.rsplit("/", 2)[-2] for k in checkpoints],
        "state_lag": killed_at - seen,
        "uri": s3_uri(endpoint, f"bench/resume/sweeps/{name}"),
    }


def bench_resume(root: Path, endpoint: str, faces: int, epochs: int) -> dict:
    import ray
    import ray.tune

    from hmtl.orchestration.sweep.run import resume_sweep

    address = ray.get_runtime_context().gcs_address
    killed = interrupt_sweep(root, endpoint, faces, epochs, address)
    reports = Reports()
    descriptor = ray.tune.Tuner.__dict__["restore"]
    original = ray.tune.Tuner.restore

    def restore(*args, **kwargs):
        tuner = original(*args, **kwargs)
        run_config = tuner._local_tuner.get_run_config()
        run_config.callbacks = [*(run_config.callbacks or []), reports]
        run_config.verbose = 0
        return tuner

    ray.tune.Tuner.restore = staticmethod(restore)
    try:
        start = time.perf_counter()
        result = resume_sweep(killed["uri"])
        end = time.perf_counter()
    finally:
        ray.tune.Tuner.restore = descriptor
    first = min(reports.results)
    return {
        **killed,
        "to_report": first[0] - start,
        "to_trial_start": (reports.trial_started or first[0]) - start,
        "epoch": first[1],
        "inside_train": first[2],
        "to_end": end - start,
        "errors": result.errors,
        "epochs": epochs,
    }


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="upload repetitions (median)")
    parser.add_argument("--faces", type=int, default=2000, help="synthetic faces (parts 2, 3)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run in part 2")
    parser.add_argument("--resume-epochs", type=int, default=8, help="epochs in part 3")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1,3")
    args = parser.parse_args()
    parts = {int(p) for p in args.parts.split(",")}

    fake_aws_env()  # before boto3, pyarrow's S3 client or Ray read the environment
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    root = Path(tempfile.mkdtemp(prefix="hmtl-ckpt-bench-"))
    # MLflow with a SQLite store and no artifact root writes ./mlruns: keep it in the scratch.
    os.chdir(root)
    moto, endpoint = start_moto(root)
    finished = False
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        print(f"S3: moto_server at {endpoint}, bucket {BUCKET}; scratch {root}", flush=True)
        if 1 in parts:
            report_upload(bench_upload(endpoint, args.reps), args.reps)
        if parts & {2, 3}:
            from hmtl.orchestration.platform.cluster import init_ray

            init_ray(None)  # started once, first, so no figure pays for Ray start-up
        if 2 in parts:
            report_blocked(bench_blocked(root, endpoint, args.faces, args.epochs), args)
        if 3 in parts:
            report_resume(bench_resume(root, endpoint, args.faces, args.resume_epochs), args)
        finished = True
    finally:
        moto.terminate()
        try:
            moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            moto.kill()
        os.chdir("/")
        if finished:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"scratch kept for inspection (server and sweep logs): {root}", file=sys.stderr)


def report_upload(rows, reps: int) -> None:
    print(f"\n1. One checkpoint to S3, serialize + upload, median of {reps} (seconds)")
    print("   ours      = save_checkpoint to a temp folder + Ray's persist_current_checkpoint")
    print("   put       = torch.save to bytes + boto3 put_object (checkpoint.pt and card.json)")
    print("   multipart = torch.save to bytes + boto3 upload_fileobj (8 MiB parts, threads)")
    print(
        f"   {'checkpoint':<26}{'MB':>6}  {'ours (save + upload)':>22}"
        f"  {'put (save + upload)':>22}  {'multipart':>9}  {'ours/put':>8}  {'ours/multipart':>14}"
    )
    for label, mb, t in rows:
        a, b, m = t["ours"], t["put"], t["multipart"]
        print(
            f"   {label:<26}{mb:6.1f}  {a['total']:6.3f} ({a['save']:.3f} + {a['upload']:.3f})"
            f"  {b['total']:6.3f} ({b['save']:.3f} + {b['upload']:.3f})  {m['total']:9.3f}"
            f"  {a['total'] / b['total']:8.2f}  {a['total'] / m['total']:14.2f}"
        )


def report_blocked(r: dict, args) -> None:
    mean = statistics.mean
    print(
        f"\n2. Training loop blocked per checkpoint (small_cnn w32, 48 px grey, "
        f"{args.faces} faces, {args.epochs} epochs, 1 thread)"
    )
    print("   direct: from just before save_checkpoint to the return of session.report")
    print("   difference: mean epoch-to-epoch advance of time/train_s, checkpoint every epoch")
    print("               minus the same with no checkpoint before the last epoch")
    for label, key_direct, key_diff in (
        ("LocalSession", "local_direct", "local_diff"),
        ("Ray Tune trial, S3", "ray_direct", "ray_diff"),
    ):
        direct = r[key_direct]
        ck, none = r[key_diff]
        shown = ", ".join(f"{x:.3f}" for x in direct)
        print(
            f"   {label:<19} direct {statistics.median(direct):6.3f} s/checkpoint "
            f"(median of {len(direct)}: {shown})"
        )
        print(
            f"   {'':<19} difference {mean(ck) - mean(none):6.3f} s/checkpoint "
            f"(advance {mean(ck):.3f} s with, {mean(none):.3f} s without)"
        )


def report_resume(r: dict, args) -> None:
    print(
        f"\n3. resume_sweep on S3 -> first resumed epoch report ({args.faces} faces, "
        f"{r['epochs']} epochs, Ray already running)"
    )
    print(
        f"   SIGKILLed with {', '.join(r['checkpoints'])} in the bucket; Tune's experiment"
        f" state on S3\n   had been rewritten {r['state_lag']:.1f} s after the first checkpoint"
        f" landed; the trial resumed at epoch {r['epoch']}"
    )
    print(f"   resume_sweep call -> first report      {r['to_report']:6.2f} s (epoch {r['epoch']})")
    print(f"     call -> trial start                  {r['to_trial_start']:6.2f} s")
    print(
        f"     trial start -> first report          {r['to_report'] - r['to_trial_start']:6.2f} s"
        f"  (inside train: {r['inside_train']:.2f} s)"
    )
    print(
        f"   resume_sweep call -> sweep finished    {r['to_end']:6.2f} s  "
        f"(trial errors: {r['errors']})"
    )


if __name__ == "__main__":
    main()
