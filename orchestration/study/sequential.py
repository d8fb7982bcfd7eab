"""A stage whose `repeats` decide (orchestration/study/decide/options.py): seeds in rounds.

Before each look a round of seeds runs as its own sweep (`sweeps/<stage>` first, then
`sweeps/<stage>.r2`, ...; orchestration/study/results.py reads them together). After it, every
comparison against the baseline that is still undecided gets its adjusted interval and
decision (orchestration/study/decide/look.py); the next round runs the undecided cells and
their baseline cells only, on the next seeds, so pairing holds. The stage ends when every
comparison is decided or the last look is taken.

State that must survive a kill is data: each look is recorded in the study's manifest
(`rounds.<stage>`) when it is taken, and a round's sweep folder says it started. On resume a
started round resumes like any sweep (mid-round), and a finished round whose look was not
recorded is looked at again from its stored results (the same rows give the same look).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.decide.look import look, settled, unit_differences
from hmtl.orchestration.study.decide.options import SUBSET_KEY, RepeatsOptions
from hmtl.orchestration.study.decide.rules import SequentialDesign, make_design
from hmtl.orchestration.study.kinds import KINDS
from hmtl.orchestration.study.report.adjusted import verdict
from hmtl.orchestration.study.results import round_name, stage_space


def sequential(stage) -> RepeatsOptions | None:
    """The stage's repeats when they decide in rounds, else None."""
    repeats = getattr(stage.options, "repeats", None)
    return repeats if isinstance(repeats, RepeatsOptions) and repeats.decide else None


def stage_design(study, stage) -> SequentialDesign:
    """The stage's design, declared by its file: looks in units, alpha shared by its
    comparisons (every non-baseline cell against its baseline)."""
    repeats = sequential(stage)
    _, against = KINDS[stage.kind].cells(study, stage)
    k = unit_size(repeats)
    return make_design(
        tuple(n // k for n in repeats.looks()),
        repeats.decide.alpha,
        repeats.decide.effect,
        repeats.decide.spending,
        max(len(against), 1),
    )


def unit_size(repeats: RepeatsOptions) -> int:
    return repeats.inits_per_subset if SUBSET_KEY in repeats.vary else 1


def take_look(study, stage, sweep: Store, runs=None, earlier=None, number=1) -> dict[str, dict]:
    """The look after round `number` from the stored trials of every round so far."""
    repeats = sequential(stage)
    _, against = KINDS[stage.kind].cells(study, stage)
    values = KINDS[stage.kind].cell_values(study, stage, sweep, runs)
    first = stage.options.first_seed
    differences = {
        cell: unit_differences(
            values.get(cell, {}), values.get(base, {}), first, unit_size(repeats)
        )
        for cell, base in against.items()
    }
    return look(stage_design(study, stage), differences, earlier, number)


def next_round(study, stage, looks: list[dict]) -> tuple[range, set[str]] | None:
    """The repeats (0-based) and cells of the next round, or None when the stage is done."""
    repeats = sequential(stage)
    planned = repeats.looks()
    if not looks:
        every, _ = KINDS[stage.kind].cells(study, stage)
        return range(planned[0]), set(every)
    done = len(looks)
    if done >= len(planned) or settled(looks[-1]["decisions"]):
        return None
    _, against = KINDS[stage.kind].cells(study, stage)
    open_ = {c for c, d in looks[-1]["decisions"].items() if d["decision"] == "undecided"}
    cells = open_ | {against[c] for c in open_}
    return range(planned[done - 1], planned[done]), cells


def run_rounds(
    study,
    stage,
    options: Any,
    overrides: dict,
    store: Store,
    manifest: dict,
    save: Callable[[], None],
    run: Callable[[Any], Any],
    resume: Callable[[Store], Any],
    echo: Callable[[str], None],
):
    """Every round of a sequential stage, resuming where the manifest and storage say.
    `run(space)` runs a new round's sweep, `resume(folder)` continues a started one; both
    return the sweep's result. Returns (the last round's result, its space, the looks)."""
    looks: list[dict] = manifest.setdefault("rounds", {}).setdefault(stage.name, [])
    result = space = None
    first = store.child("sweeps", stage.name)
    while True:
        number = len(looks) + 1
        folder = store.child("sweeps", round_name(stage.name, number))
        started = stage_space(folder)
        if started is not None:
            echo(f"stage {stage.name} round {number}: resuming {folder.uri}")
            space, result = started, resume(folder)
        else:
            plan = next_round(study, stage, looks)
            if plan is None and result is None:  # every look was taken before a kill
                last = store.child("sweeps", round_name(stage.name, len(looks)))
                return resume(last), stage_space(last), looks
            if plan is None:
                return result, space, looks
            repeats, cells = plan
            space = KINDS[stage.kind].space(
                study,
                stage,
                options,
                overrides,
                repeats=repeats,
                cells=cells,
                name=round_name(stage.name, number),
            )
            echo(
                f"stage {stage.name} ({stage.kind}) round {number}: repeats "
                f"{repeats.start + 1}-{repeats.stop}, {space.num_samples} trials"
            )
            result = run(space)
        if result.errors or result.best_trial is None:
            return result, space, looks
        earlier = looks[-1]["decisions"] if looks else None
        decisions = take_look(study, stage, first, None, earlier, number)
        trials = space.num_samples
        looks.append({"round": number, "trials": trials, "decisions": decisions})
        save()
        echo(
            f"stage {stage.name} look {number}: "
            + ", ".join(
                f"{name} {verdict(d['decision'], study.mode)} (n {d.get('n', '?')})"
                for name, d in sorted(decisions.items())
            )
        )


def saved_trials(study, stage, looks: list[dict]) -> tuple[int, int]:
    """(trials run, trials a fixed design of `max` seeds for every cell would run)."""
    every, _ = KINDS[stage.kind].cells(study, stage)
    return sum(x["trials"] for x in looks), len(every) * sequential(stage).max
