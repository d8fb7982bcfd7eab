"""Study files: every shipped study validates, bad ones are refused in one line naming the
file, the key and the problem, and grids expand to the arms, cells and seeds they name."""

import pytest
import ray
import yaml
from helpers import refused
from mining_helpers import labelled_set

from hmtl.orchestration.study.checks import StudyError
from hmtl.orchestration.study.engine import is_job, stage_options, stage_space
from hmtl.orchestration.study.kinds import KINDS
from hmtl.orchestration.study.refs import resolve
from hmtl.orchestration.study.smoke import smoke_study
from hmtl.orchestration.study.spec import load_study, shipped_studies, validate_study

BASE = {
    "runtime": {"device": "cpu"},
    "tasks": {"loss_weights": {"jigsaw": 0.1, "inpainting": 0.3, "rotation": 0.2}},
}


def study(*stages, **top):
    return {"name": "s", "base": BASE, "stages": list(stages), **top}


def grid(**keys):
    return {"name": "g", "kind": "grid", "arms": {"baseline": {}}, **keys}


@pytest.mark.parametrize("name", sorted(shipped_studies()))
def test_every_shipped_study_validates_and_builds_its_stages(name, tmp_path):
    spec = load_study(name)
    assert spec.name == name and spec.stage_list
    # Stand-ins for what earlier stages record, so stages that refer to them build too.
    earlier = {"best_checkpoint": str(tmp_path / "ckpt"), "best_config": {}, "top_configs": [{}]}
    dataset = labelled_set(tmp_path / "data", n=40)  # what a mine or distill stage publishes
    done = {**earlier, "run_id": "r", "dataset": str(dataset), "rows": 40}
    for candidate in (spec, smoke_study(spec, tmp_path)):
        outputs = {stage.name: done for stage in candidate.stage_list}
        for stage in candidate.stage_list:
            if is_job(stage):  # a job (mine, distill): its options resolve and validate
                options, _ = stage_options(candidate, stage, outputs)
                assert str(tmp_path) in options.model_dump_json()
                continue
            assert stage_space(candidate, stage, outputs).num_samples >= 1


@pytest.mark.parametrize(
    "raw, needle",
    [
        (study(grid(), color="red"), "unknown key 'color' (valid keys here: base"),
        (study(grid(), metric="accuracy"), "metric: 'accuracy' is not a reported metric"),
        (study({"name": "x", "kind": "bake"}), "stages[0] (x).kind: 'bake' is not a stage kind"),
        (study(grid(arms={"a": {}}, colour=1)), "stages[0] (g).colour: unknown key"),
        (study(grid(), grid()), "stages[1] (g): name 'g' is used by an earlier stage"),
        (
            study(grid(overrides={"optim.speed": 1})),
            "stages[0] (g).overrides.optim.speed: unknown TrainConfig key",
        ),
        (
            study(grid(arms={"baseline": {"optim.lr": -1.0}})),
            "stages[0] (g).arms.baseline: makes an invalid config: optim.lr",
        ),
        (study(grid(arms={"a": {}})), "stages[0] (g).baseline: no arm named 'baseline'"),
        (
            study(grid(arms={}, factorial=["jigsaw", "contrastive"])),
            "factorial: contrastive has weight 0 in the base",
        ),
        (study(grid(arms={}, factorial=["colour"])), "factorial: 'colour' is not an auxiliary"),
        (
            study(grid(overrides={"model.pretrained": "${pre.best_checkpoint}"})),
            "${pre.best_checkpoint}: no earlier stage 'pre' (earlier stages: none)",
        ),
        (
            study(
                {"name": "pre", "kind": "train"},
                grid(overrides={"model.pretrained": "${pre.best_weights}"}),
            ),
            "stages[1] (g).overrides.model.pretrained: ${pre.best_weights}: 'best_weights' is not",
        ),
        (study(grid(), {"name": "x", "kind": "sweep", "space": "nowhere"}), "(x).space: nowhere"),
        (
            study({"name": "pre", "kind": "train", "metric": "test/accuracy"}),
            "stages[0] (pre).metric: 'test/accuracy' is not a metric reported every epoch",
        ),
        (
            study(grid(factors={"data.split_seed": [0, 1]})),
            "stages[0] (g): data.split_seed stays fixed in a grid",
        ),
    ],
)
def test_bad_study_is_one_line_naming_the_key(tmp_path, raw, needle):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and needle in message


def test_factorial_expands_to_named_arms_seed_by_seed_with_the_base_weights():
    spec = validate_study(study(grid(arms={}, factorial=["jigsaw", "inpainting"], repeats=2)))
    space = stage_space(spec, spec.stage_list[0], {})
    arms = [p.tags["hmtl.arm"] for p in space.trials]
    assert arms == ["none", "jigsaw", "inpainting", "jigsaw+inpainting"] * 2
    assert [p.tags["hmtl.seed"] for p in space.trials] == ["0"] * 4 + ["1"] * 4
    both = space.trial_config({"trial": 3})
    assert (both.tasks.loss_weights.jigsaw, both.tasks.loss_weights.inpainting) == (0.1, 0.3)
    assert both.tasks.loss_weights.rotation == 0.2  # not in the factorial: the base's
    design = KINDS["grid"].design(spec, spec.stage_list[0])
    assert design.baseline == "none" and design.aux_tasks == ["jigsaw", "inpainting"]
    assert design.arm_aux["jigsaw"] == {"jigsaw": True, "inpainting": False}


def test_leave_one_out_and_factors_make_cells_paired_by_seed():
    stage = grid(arms={}, leave_one_out=["jigsaw", "rotation"], repeats=2)
    stage["factors"] = {"data.label_fraction": [0.2, 1.0]}
    spec = validate_study(study(stage))
    space = stage_space(spec, spec.stage_list[0], {})
    assert len(space.trials) == 3 * 2 * 2
    cells = {p.tags["hmtl.cell"] for p in space.trials}
    assert "all-rotation|data.label_fraction=0.2" in cells and len(cells) == 6
    configs = [space.trial_config({"trial": i}) for i in range(len(space.trials))]
    assert {c.data.split_seed for c in configs} == {0}  # the split is the same in every trial
    assert {c.runtime.seed for c in configs} == {0, 1}
    assert KINDS["grid"].design(spec, spec.stage_list[0]).baseline == "all"


def test_references_resolve_to_recorded_outputs_whole_or_inside_a_string():
    outputs = {"pre": {"best_checkpoint": "s3://b/ck", "best_config": {"optim.lr": 0.01}}}
    raw = {"a": "${pre.best_config}", "b": "from ${pre.best_checkpoint}", "c": 3}
    assert resolve(raw, outputs) == {"a": {"optim.lr": 0.01}, "b": "from s3://b/ck", "c": 3}
    with pytest.raises(ValueError, match="recorded no run_id"):
        resolve("${pre.run_id}", outputs)


def test_a_later_stage_takes_an_earlier_stages_checkpoint_and_config():
    spec = validate_study(
        study(
            {"name": "pre", "kind": "train", "overrides": {"schedule.epochs": 2}},
            grid(
                arms={"baseline": {}, "tuned": "${pre.best_config}"},
                overrides={"model.pretrained": "${pre.best_checkpoint}"},
            ),
        )
    )
    outputs = {"pre": {"best_checkpoint": "s3://b/ck", "best_config": {"optim.lr": 0.01}}}
    space = stage_space(spec, spec.stage_list[1], outputs)
    tuned = space.trial_config({"trial": 1})
    assert tuned.model.pretrained == "s3://b/ck" and tuned.optim.lr == 0.01


def test_study_cli_refuses_a_bad_file_before_ray_and_leaves_nothing(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study(grid(arms={"a": {}}))))
    storage = tmp_path / "runs"
    refused(["study", str(path), "--storage", str(storage)], "no arm named 'baseline'")
    refused(["study", "no-such-study"], "no such study file or shipped study")
    assert not storage.exists() and not ray.is_initialized()


def test_sweep_confirm_adds_a_stage_rerunning_the_top_configs_over_fresh_seeds():
    search = {"name": "search", "kind": "sweep", "space": "quickstart"}
    confirm = {"top_k": 2, "repeats": 3}
    later = grid(arms={"baseline": {}, "best": "${search-confirm.best_config}"})
    spec = validate_study(study({**search, "confirm": confirm}, later))
    assert [s.name for s in spec.stage_list] == ["search", "search-confirm", "g"]
    top = [{"optim.lr": 0.001}, {"optim.lr": 0.002}, {"optim.lr": 0.003}]
    space = stage_space(spec, spec.stage_list[1], {"search": {"top_configs": top}})
    seen = {
        (p.tags["hmtl.arm"], p.overrides["optim.lr"], p.overrides["runtime.seed"])
        for p in space.trials
    }
    assert seen == {
        (f"top{i + 1}", top[i]["optim.lr"], s) for i in (0, 1) for s in (1000, 1001, 1002)
    }
    with pytest.raises(StudyError, match=r"confirm.top_k: 20, but the sweep runs 12 trials"):
        validate_study(study({**search, "confirm": {"top_k": 20}}))


def test_study_cli_refuses_to_start_a_study_that_exists_and_names_resume(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study(grid())))
    storage = tmp_path / "runs"
    (storage / "studies" / "s").mkdir(parents=True)
    (storage / "studies" / "s" / "hmtl-study.json").write_text("{}")
    line = refused(["study", str(path), "--storage", str(storage)], "study 's' exists")
    assert f"hmtl resume {storage / 'studies' / 's'}" in line and not ray.is_initialized()


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"num_samples": 3}, "num_samples: 3, but 2 trials are listed"),
        ({"space": {"optim.lr": "uniform(0.001, 0.01)"}}, "space: a space with explicit trials"),
        ({"trials": [{"overrides": {"optim.rate": 1}}] * 2}, "trials[0].optim.rate: unknown"),
        ({"trials": [{"overrides": {"optim.lr": -1}}] * 2}, "trials[0]: makes an invalid config"),
    ],
)
def test_a_space_of_explicit_trials_is_checked_like_a_searched_one(change, needle):
    from hmtl.orchestration.sweep.space import SpaceError, validate_space

    raw = {
        "name": "explicit",
        "num_samples": 2,
        "scheduler": None,
        "base": BASE,
        "space": {},
        "trials": [{"overrides": {"optim.lr": 0.001}}, {"overrides": {"optim.lr": 0.002}}],
    }
    assert validate_space(raw).trial_config({"trial": 1}).optim.lr == 0.002
    with pytest.raises(SpaceError, match="explicit") as err:
        validate_space({**raw, **change})
    assert needle in str(err.value) and "\n" not in str(err.value)
