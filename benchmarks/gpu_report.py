"""One JSON and one Markdown table from gpu_check.sh's parts: the gpu tests' summary line,
gpu_train_step.py's rows (with MFU against the card's dense bf16 peak, looked up here from
the device name) and gpu_consumers.py's rows (with each CUDA row's ratio to its CPU row).

    python benchmarks/gpu_report.py DIR      reads DIR/*.json, DIR/gpu_tests.txt;
                                             writes DIR/gpu_check.json, DIR/gpu_check.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets; the
# first name fragment the device name contains wins, so the specific ones come first.
PEAKS = (
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100 PCIe", 756.5),
    ("H100 NVL", 835.5),
    ("H100", 989.4),  # SXM (the "H100 80GB HBM3")
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("RTX 4090", 165.2),
)


def peak_tflops(device_name: str) -> float | None:
    """The card's dense bf16 peak, or None for a name the table does not know (a CPU)."""
    for fragment, peak in PEAKS:
        if fragment in device_name:
            return peak
    return None


def with_mfu(train: dict) -> dict:
    """The training rows with MFU (achieved TFLOP/s over the peak) and, per shape, the
    all-auxiliaries step time over the expression-only one."""
    peak = peak_tflops(train["device"])
    rows = [r for r in train["rows"] if "error" not in r]
    base = {}
    for row in rows:
        row["mfu"] = row["tflops"] / peak if peak and row["tflops"] else None
        if not row["auxiliaries"] and not row["compile"]:
            base[row["backbone"], row["image_size"]] = row["step_ms"]
    for row in rows:
        alone = base.get((row["backbone"], row["image_size"]))
        row["aux_cost"] = row["step_ms"] / alone if row["auxiliaries"] and alone else None
    return {**train, "peak_bf16_tflops": peak}


def with_ratios(consumers: dict) -> dict:
    """Each CUDA row's images/s over its CPU row's (same work, the CPU's batch)."""
    done = [r for r in consumers["rows"] if "error" not in r]
    cpu = {(r["what"], r["how"]): r for r in done if r["device"] == "cpu"}
    for row in done:
        ref = cpu.get((row["what"], row["how"]))
        on_gpu = row["device"] != "cpu" and ref is not None
        row["vs_cpu"] = row["images_per_s"] / ref["images_per_s"] if on_gpu else None
    return consumers


def targets(report: dict) -> list[str]:
    """issue 24's targets, each met or not (or not measured: no CUDA rows)."""
    train = report.get("train_step", {})
    eager = [r for r in train.get("rows", []) if "error" not in r and not r["compile"]]
    hmtl = [r for r in eager if r["backbone"] == "resnet18" and r["auxiliaries"]]
    gpu = [r for r in report.get("consumers", {}).get("rows", []) if r.get("vs_cpu")]
    out = []
    if hmtl and hmtl[0].get("mfu") is not None:
        mfu = hmtl[0]["mfu"]
        out.append(f"MFU >= 30%, ResNet-18 112 px, all auxiliaries: {mfu:.1%} ({met(mfu >= 0.3)})")
    else:
        out.append("MFU >= 30%, ResNet-18 112 px, all auxiliaries: not measured (no GPU peak)")
    costs = [r for r in eager if r.get("aux_cost") is not None]
    if costs and train.get("peak_bf16_tflops"):
        worst = max(r["aux_cost"] for r in costs)
        verdict = met(worst <= 1.6)
        out.append(f"all four auxiliaries <= 1.6x expression only: worst {worst:.2f}x ({verdict})")
    else:
        out.append("all four auxiliaries <= 1.6x expression only: not measured on a GPU")
    if gpu:
        best = {}
        for r in gpu:
            best[r["what"], r["how"]] = max(best.get((r["what"], r["how"]), 0.0), r["vs_cpu"])
        parts = ", ".join(f"{how} {x:.1f}x" for (_, how), x in best.items())
        out.append(f"pool scoring and mining >= 10x CPU: {parts} ({met(min(best.values()) >= 10)})")
    else:
        out.append("pool scoring and mining >= 10x CPU: not measured (no CUDA rows)")
    return out


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def fmt(value, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def fmt_flops(flops: int | None) -> str:
    return "-" if flops is None else f"{flops / 1e9:.1f}"


def markdown(report: dict) -> str:
    train, consumers = report.get("train_step"), report.get("consumers")
    lines = [f"Device: {report['device']}; torch {report['torch']}."]
    if report.get("gpu_tests"):
        lines.append(f"gpu tests: {report['gpu_tests']}")
    if train:
        peak = train["peak_bf16_tflops"]
        lines += [
            "",
            f"Training step (MFU against a dense bf16 peak of {peak:.1f} TFLOP/s)"
            if peak
            else f"Training step (no dense bf16 peak known for {report['device']}: no MFU)",
            "",
            "| backbone | px | batch | tasks | compile | precision | img/s | ms/step "
            "| x expr. only | peak MiB | GFLOP/step | TFLOP/s achieved | MFU | syncs/step "
            "| GPU busy |",
            "| --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: | ---: |",
        ]
        for r in train["rows"]:
            tasks = "expression + 4 aux" if r["auxiliaries"] else "expression"
            head = f"| {r['backbone']} | {r['image_size']} | {r['batch']} | {tasks} "
            head += f"| {'yes' if r['compile'] else 'no'} "
            if "error" in r:
                lines.append(head + f"| FAILED: {r['error']} |" + " |" * 9)
                continue
            lines.append(
                head + f"| {r['precision']} "
                f"| {r['images_per_s']:.4g} | {r['step_ms']:.1f} | {fmt(r['aux_cost'], '.2f')} "
                f"| {fmt(r['peak_mib'], '.0f')} | {fmt_flops(r['flops_per_step'])} "
                f"| {fmt(r['tflops'], '.3g')} | {fmt(r['mfu'], '.1%')} "
                f"| {fmt(r.get('host_syncs_per_step'), '.1f')} "
                f"| {fmt(r.get('gpu_busy_share'), '.0%')} |"
            )
        fell = [r for r in train["rows"] if r.get("compile_fell_back")]
        lines += [f"compile fell back: {r['compile_fell_back']}" for r in fell]
        check = train.get("compile_fallback")
        if check:
            lines.append(f"torch.compile fallback check: {'ok' if check['ok'] else 'FAILED'}")
    if consumers:
        lines += [
            "",
            f"Pool scoring and mining (pool {consumers['rows'][0]['pool']} faces, "
            f"CPU threads {consumers['cpu_threads']})",
            "",
            "| work | what runs | device | batch | img/s | seconds | x CPU |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for r in consumers["rows"]:
            if "error" in r:
                lines.append(
                    f"| {r['what']} | {r['how']} | {r['device']} | {r['batch']} "
                    f"| FAILED: {r['error']} | | |"
                )
                continue
            lines.append(
                f"| {r['what']} | {r['how']} | {r['device']} | {r['batch']} "
                f"| {r['images_per_s']:.0f} | {r['seconds']:.2f} | {fmt(r['vs_cpu'], '.1f')} |"
            )
    lines += ["", "Targets (issue 24):", *[f"- {t}" for t in targets(report)]]
    return "\n".join(lines) + "\n"


def main() -> None:
    folder = Path(sys.argv[1])
    report: dict = {"device": "CPU", "torch": "?"}
    tests = folder / "gpu_tests.txt"
    if tests.exists():
        report["gpu_tests"] = tests.read_text().strip()
    if (folder / "train_step.json").exists():
        train = with_mfu(json.loads((folder / "train_step.json").read_text()))
        report.update(device=train["device"], torch=train["torch"], train_step=train)
    if (folder / "consumers.json").exists():
        report["consumers"] = with_ratios(json.loads((folder / "consumers.json").read_text()))
    (folder / "gpu_check.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (folder / "gpu_check.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
