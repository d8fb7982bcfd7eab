"""Study stages that are jobs (mine, distill): their options are refused in one line naming the
file, the stage and the key, before Ray starts (running them: the integration tier's
tests/integration/study/test_job_stages.py)."""

import pytest
import ray
from helpers import refused
from mining_helpers import DISTILL_STAGE as DISTILL
from mining_helpers import MINE_STAGE as MINE
from mining_helpers import labelled_set, write_study

from hmtl.orchestration.study.checks import StudyError
from hmtl.orchestration.study.spec import load_study


@pytest.mark.parametrize(
    "stages, needle",
    [
        (
            [{**MINE, "colour": 1}],
            "stages[0] (mine).colour: unknown key (valid keys of a mine",
        ),
        ([{**MINE, "min_similarity": 2}], "stages[0] (mine).min_similarity: Input should be"),
        ([{k: v for k, v in MINE.items() if k != "model"}], "stages[0] (mine).model: Field"),
        ([{**MINE, "engine": "spark"}], "stages[0] (mine).engine: Input should be 'ray' or"),
        ([{**MINE, "overrides": {"optim.lr": 0.1}}], "(mine).overrides: a mine stage trains"),
        (
            [MINE, {**DISTILL, "augment": ["blur"]}],
            "(distill).augment: unknown ops ['blur']; choose",
        ),
        (
            [MINE, {**DISTILL, "images_per_class": 0}],
            "(distill).images_per_class: Input should",
        ),
        (
            [MINE, {**DISTILL, "source": "${mine.datasets}"}],
            "'datasets' is not a stage output",
        ),
        ([DISTILL], "${mine.dataset}: no earlier stage 'mine'"),
    ],
)
def test_bad_job_options_are_one_line_naming_the_stage_and_key(tmp_path, stages, needle):
    path = write_study(tmp_path, *stages)
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and needle in message


def test_missing_inputs_are_refused_before_ray_and_leave_nothing(tmp_path):
    storage = tmp_path / "runs"
    path = write_study(tmp_path, {**MINE, "pool": str(tmp_path / "no-pool")})
    refused(["study", str(path), "--storage", str(storage)], "stages[0] (mine): pool: ")
    source = {**DISTILL, "source": str(labelled_set(tmp_path / "data", n=16))}
    path = write_study(tmp_path, {**source, "images_per_class": 9})
    line = refused(["study", str(path), "--storage", str(storage)], "stages[0] (distill): source")
    assert "has only" in line
    assert not storage.exists() and not ray.is_initialized()
