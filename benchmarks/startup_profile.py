"""Where a sweep's time goes per trial: phases from time stamps, CPU seconds per process.

Runs the hmtl half of benchmarks/peer_optuna.py (same space, trials and faces) with
`HMTL_PHASES_DIR` set, so every trial writes its own time stamps (orchestration/sweep/phases.py),
and a driver callback stamping the results Tune receives. Prints per trial (mean seconds):

  sweep start -> trial start   run_sweep called -> a fresh process's first trial starts
                               (the driver's set-up, the actor's start and its imports)
  start -> entry       driver starts the trial -> the trial function runs (reset or not)
  entry -> 1st report  configuration, dataset, model, first epoch (cache hits: reused process)
  report -> driver     a report entered -> the driver has the result (checkpoint persisted)
  driver -> resumed    the driver has the result -> the report returns (Tune's round trip)
  last -> exit         the last report returned -> the trial function returns
  exit -> complete     the function returned -> the driver sees the trial complete
  idle slot            a slot's last trial completed -> its next trial starts

It also prints CPU seconds used during the sweep by each kind of process (the driver, trial
processes, Ray's own: GCS, raylet, dashboard, agents, log monitor), sampled from /proc, and
the driver's cProfile (its main thread: Tune's event loop) for the calls worth knowing.
CPU seconds depend less on the machine's load than wall times.

    python benchmarks/startup_profile.py [--trials 6] [--epochs 3] [--faces 3000] [--concurrent 2]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from peer_optuna import make_space  # benchmarks/ is on sys.path when run as a script
from ray.tune import Callback

from hmtl.orchestration.platform.cluster import init_ray
from hmtl.orchestration.sweep.phases import PHASES_ENV
from hmtl.orchestration.sweep.run import run_sweep
from hmtl.orchestration.tracking import ops as tracking_ops
from hmtl.orchestration.tracking import queue as tracking_queue
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.trainables.data.dataset import ensure_synthetic

KINDS = (  # (what a command line contains, the kind of process), first match wins
    ("DashboardAgent", "Ray: dashboard agent"),
    ("dashboard/agent.py", "Ray: dashboard agent"),
    ("RuntimeEnvAgent", "Ray: runtime-env agent"),
    ("runtime_env/agent", "Ray: runtime-env agent"),
    ("default_worker.py", "trial processes"),  # before its title becomes ray::...
    ("ray::", "trial processes"),
    ("gcs_server", "Ray: GCS"),
    ("raylet/raylet", "Ray: raylet"),
    ("dashboard.py", "Ray: dashboard"),
    ("log_monitor", "Ray: log monitor"),
    ("multiprocessing", "Ray: dashboard"),  # the dashboard's module processes
)
DRIVER_CALLS = {  # (file name, function) of the driver's main thread worth a line
    ("tune_controller.py", "step"),
    ("tune_controller.py", "checkpoint"),
    ("tune_controller.py", "_process_trial_result"),
    ("tune_controller.py", "_process_trial_save"),
    ("tune_controller.py", "_schedule_trial_reset"),
    ("tune_controller.py", "_schedule_trial_stop"),
    ("tune_controller.py", "_maybe_update_trial_queue"),
    ("callback.py", "on_trial_result"),
    ("callback.py", "on_checkpoint"),
    ("callback.py", "on_trial_complete"),
    ("callback.py", "on_trial_start"),
    ("progress_reporter.py", "report"),
    ("actor_manager.py", "next"),
    ("tracking.py", "on_trial_result"),
    ("tracking.py", "on_experiment_end"),
    ("optuna_search.py", "on_trial_complete"),
    ("optuna_search.py", "suggest"),
}


class DriverClock(Callback):
    """When the driver started each trial, received each result, and saw it complete."""

    def __init__(self) -> None:
        self.start: dict[str, float] = {}
        self.results: dict[str, list[float]] = defaultdict(list)
        self.complete: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.start[trial.trial_id] = time.time()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results[trial.trial_id].append(time.time())

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.complete[trial.trial_id] = time.time()


class CpuSampler(threading.Thread):
    """Highest CPU seconds seen per process (utime + stime), sampled every second; its own
    CPU seconds (reading /proc) are counted apart from the driver's."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="cpu-sampler")
        self.seen: dict[int, tuple[str, float]] = {}
        self.threads: dict[int, tuple[str, str, float]] = {}  # tid -> (kind, name, seconds)
        self.stop = threading.Event()

    def sample(self) -> dict[int, tuple[str, float]]:
        """CPU seconds of this process and its descendants (the local Ray it started)."""
        stats, tick = {}, os.sysconf("SC_CLK_TCK")
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(proc.name)] = (int(fields[1]), cmd, int(fields[11]) + int(fields[12]))
        ours, grew = {os.getpid()}, True
        while grew:
            found = {pid for pid, (parent, _, _) in stats.items() if parent in ours}
            grew, ours = bool(found - ours), ours | found
        return {
            pid: ("the driver" if pid == os.getpid() else _kind(cmd), ticks / tick)
            for pid, (_, cmd, ticks) in stats.items()
            if pid in ours
        }

    def run(self) -> None:
        began = time.thread_time()
        try:
            self._run()
        finally:
            self.own_cpu = time.thread_time() - began

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            for pid, (kind, seconds) in self.sample().items():
                # An exiting process has no command line left: keep the kind first seen.
                self.seen[pid] = (self.seen.get(pid, (kind,))[0], seconds)
                if self.seen[pid][0] in ("the driver", "trial processes"):
                    self.sample_threads(pid, self.seen[pid][0])

    def sample_threads(self, pid: int, kind: str) -> None:
        """CPU seconds per thread of one process, by the thread's name (Ray names its own)."""
        tick = os.sysconf("SC_CLK_TCK")
        python = {t.native_id: t.name for t in threading.enumerate()} if pid == os.getpid() else {}
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                text = (task / "stat").read_text()
            except OSError:
                continue
            name = python.get(int(task.name)) or text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / tick
            self.threads[int(task.name)] = (kind, name, seconds)


class OpClock:
    """Wall and CPU seconds of the tracking thread per MLflow operation (tracking/ops.py),
    by wrapping the two functions the tracking queue delivers through."""

    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        apply, rows = tracking_ops.Delivery.apply, tracking_queue.log_rows

        def timed(name: str, call, *args):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return call(*args)
            finally:
                entry = self.spent[name]
                entry[0] += 1
                entry[1] += time.perf_counter() - wall
                entry[2] += time.thread_time() - cpu

        tracking_ops.Delivery.apply = lambda d, name, a: timed(name, apply, d, name, a)
        tracking_queue.log_rows = lambda d, ops: timed("log_epoch/tag rows", rows, d, ops)


def _kind(cmd: str) -> str:
    other = f"other: {Path(cmd.split(' ')[0]).name}"
    return next((kind for key, kind in KINDS if key in cmd), other)


def phases(folder: Path, clock: DriverClock, began: float) -> dict[str, list[float]]:
    """Seconds per phase and trial (see the module's docstring)."""
    out: dict[str, list[float]] = defaultdict(list)
    ends: dict[int, list[float]] = defaultdict(list)  # slot (process) -> completion times
    for path in sorted(folder.glob("*.json")):
        s, trial = json.loads(path.read_text()), path.stem
        reports, received = s["reports"], clock.results[trial]
        fresh = "fresh process" if s["earlier_trials"] == 0 else "reused process"
        out[f"start -> entry ({fresh})"].append(s["entry"] - clock.start[trial])
        out["entry -> 1st report"].append(reports[0][0] - s["entry"])
        for (entered, left, _), got in zip(reports, received, strict=False):
            out["report -> driver"].append(got - entered)
            out["driver -> resumed"].append(left - got)
        out["last -> exit"].append(s["exit"] - reports[-1][1])
        out["exit -> complete"].append(clock.complete[trial] - s["exit"])
        out["trial thread: CPU seconds"].append(s["thread_cpu"])
        out["trial thread: entry -> exit"].append(s["exit"] - s["entry"])
        if s["earlier_trials"] == 0:  # actor start and imports come before the trial's start
            out["sweep start -> trial start (fresh process)"].append(clock.start[trial] - began)
        ends[s["pid"]].append(clock.start[trial])
        ends[s["pid"]].append(clock.complete[trial])
    for stamps in ends.values():
        stamps.sort()
        out["idle slot"] += [b - a for a, b in zip(stamps[1::2], stamps[2::2], strict=False)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--faces", type=int, default=3000)
    parser.add_argument("--concurrent", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    root = Path(tempfile.mkdtemp(prefix="hmtl-profile-"))
    os.environ[PHASES_ENV] = str(root / "phases")
    (root / "phases").mkdir()
    space = make_space(args.trials, args.epochs, args.faces, args.concurrent, str(root / "data"))
    ensure_synthetic(space.trial_config({}).data)
    began = time.perf_counter()
    init_ray(None, num_cpus=args.concurrent)
    ray_start = time.perf_counter() - began

    sampler, clock, profile, ops = CpuSampler(), DriverClock(), cProfile.Profile(), OpClock()
    before = sampler.sample()
    sampler.sample_threads(os.getpid(), "the driver")
    threads_before = {tid: seconds for tid, (_, _, seconds) in sampler.threads.items()}
    sampler.start()
    began, main_cpu, began_at = time.perf_counter(), time.thread_time(), time.time()
    profile.enable()
    result = run_sweep(
        space, str(root / "hmtl"), default_tracking_uri(str(root / "hmtl")), callbacks=[clock]
    )
    profile.disable()
    wall, main_cpu = time.perf_counter() - began, time.thread_time() - main_cpu
    sampler.stop.set()
    sampler.join()
    assert result.errors == 0, f"{result.errors} trials errored"

    print(
        f"\n{args.trials} trials x {args.epochs} epochs, {args.faces} faces, "
        f"{args.concurrent} at a time; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"  sweep wall {wall:.1f} s (Ray's start {ray_start:.1f} s, not in it)")
    print("  phase (seconds)                      mean    max    n")
    for name, values in phases(root / "phases", clock, began_at).items():
        if values:
            print(
                f"  {name:<35} {statistics.mean(values):6.2f} {max(values):6.2f} {len(values):4d}"
            )
    cpu: dict[str, float] = defaultdict(float)
    for pid, (kind, seconds) in sampler.seen.items():
        cpu[kind] += seconds - before.get(pid, (kind, 0.0))[1]
    cpu["the driver"] -= sampler.own_cpu
    print(f"  CPU seconds during the sweep ({args.concurrent * wall:.0f} core-seconds of wall):")
    for kind, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"    {kind:<28} {seconds:7.1f}")
    print(f"    (the driver's main thread, Tune's event loop: {main_cpu:.1f}; cProfile adds to it)")
    print(f"    (this script's /proc sampler, left out of the driver's: {sampler.own_cpu:.1f})")
    by_thread: dict[tuple[str, str], float] = defaultdict(float)
    for tid, (kind, name, seconds) in sampler.threads.items():
        by_thread[kind, name] += seconds - threads_before.get(tid, 0.0)
    print("  CPU seconds by thread name (the driver's and trial processes' threads, top 8 each):")
    for which in ("the driver", "trial processes"):
        top = sorted(((v, n) for (k, n), v in by_thread.items() if k == which), reverse=True)
        print(f"    {which}: " + ", ".join(f"{n} {v:.1f}" for v, n in top[:8]))
    print("  MLflow operations in the driver's tracking thread:   calls   wall s    CPU s")
    for name, (calls, wall_s, cpu_s) in sorted(ops.spent.items(), key=lambda kv: -kv[1][2]):
        print(f"    {name:<48} {calls:5d} {wall_s:8.2f} {cpu_s:8.2f}")
    print("  driver main thread, cumulative seconds (cProfile; waits included):")
    rows = [
        (ct, calls, f"{Path(file).name}:{name}")
        for (file, _, name), (_, calls, _, ct, _) in pstats.Stats(profile).stats.items()
        if (Path(file).name, name) in DRIVER_CALLS
    ]
    for ct, calls, name in sorted(rows, reverse=True):
        print(f"    {name:<50} {ct:7.2f} s  {calls:6d} calls")


if __name__ == "__main__":
    main()
