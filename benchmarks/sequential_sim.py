"""The sequential design of a study's repeats, checked by simulation: no training.

Each simulated study is one comparison against the baseline whose paired differences (one per
seed) are drawn N(delta, 1): delta is the true difference in sds of the differences. Seeds
come in rounds (looks at 3, 6, 9 and 3, 6, 9, 12 pairs with O'Brien-Fleming spending, and
5, 10 with Pocock's: quickstart_study's design) and after
each round the same decision code a study uses (orchestration/study/decide/) decides better,
worse, equivalent (within ±0.5 sd) or undecided; a decided study stops. Beside it, the naive
procedure: re-test with a plain 95% t interval after every round.

Printed, per design, true difference and procedure: the false-decision rate (a sign the truth
does not have, or "equivalent" when |delta| >= 0.5) with its 95% Clopper-Pearson Monte-Carlo
interval, how often each decision was made, the mean number of paired seeds run, and the
paired seeds a fixed design needs for the same power (the chance of deciding *better*) with a
two-sided paired t-test at 5% (capped at 99.9%).

    python benchmarks/sequential_sim.py [--studies 20000] [--seed 0]
"""

from __future__ import annotations

import argparse

from hmtl.orchestration.study.decide.power import seeds_needed
from hmtl.orchestration.study.decide.rules import ABOVE, BELOW, EQUIVALENT, UNDECIDED, make_design
from hmtl.orchestration.study.decide.simulate import false_codes, rate_ci, run

DESIGNS = [((3, 6, 9), "obrien_fleming"), ((3, 6, 9, 12), "obrien_fleming"), ((5, 10), "pocock")]
NAMES = {"obrien_fleming": "O'Brien-Fleming", "pocock": "Pocock"}
EFFECTS = [0.0, 0.5, 1.0, 2.0]
MARGIN = 0.5


def table(studies: int, seed: int) -> list[str]:
    head = [
        "looks",
        "true Δ (sd)",
        "procedure",
        "false decisions [95% MC CI]",
        "better",
        "worse",
        "equivalent",
        "undecided",
        "mean seeds",
        "fixed design, same power",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for looks, spending in DESIGNS:
        design = make_design(looks, 0.05, MARGIN, spending)
        for delta in EFFECTS:
            for naive in (False, True):
                outcome = run(design, delta, studies, seed, naive)
                wrong = outcome.rate(*false_codes(delta, MARGIN))
                low, high = rate_ci(wrong, studies)
                found = outcome.rate(ABOVE)
                fixed = "-"
                if delta > 0 and not naive:
                    fixed = str(seeds_needed(delta, 1.0, 0.05, min(found, 0.999)))
                cells = [
                    ", ".join(map(str, looks)),
                    f"{delta:g}",
                    "naive: 95% t each round" if naive else f"group-sequential ({NAMES[spending]})",
                    f"{wrong:.4f} [{low:.4f}, {high:.4f}]",
                    *(f"{outcome.rate(c):.3f}" for c in (ABOVE, BELOW, EQUIVALENT, UNDECIDED)),
                    f"{outcome.seeds.mean():.2f}",
                    fixed,
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20_000, help="per row (at least 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.studies < 2000:
        parser.error("--studies: at least 2000")
    print("\n".join(table(args.studies, args.seed)))


if __name__ == "__main__":
    main()
