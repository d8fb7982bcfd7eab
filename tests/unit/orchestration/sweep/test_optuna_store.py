"""The sweep's Optuna study, copied into an Optuna database for optuna-dashboard: where it
goes, what it holds, and that a resume continues its trials instead of adding new ones."""

import logging
import pickle
import shutil

import optuna
import pytest
from optuna.trial import TrialState

from hmtl.orchestration.sweep.optuna_store import (
    ENV,
    LOST_ATTR,
    TRIAL_ATTR,
    StudyMirror,
    check_url,
    storage_url,
    study_name,
)
from hmtl.orchestration.sweep.search import HmtlOptunaSearch
from hmtl.orchestration.sweep.space import load_space
from hmtl.trainables.data.storage import StorageError

X = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}


@pytest.fixture(autouse=True)
def no_setting(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture(scope="module")
def empty_database(tmp_path_factory):
    """An Optuna database with its tables and no study (making the tables takes a second)."""
    path = tmp_path_factory.mktemp("optuna") / "empty.db"
    optuna.storages.RDBStorage(f"sqlite:///{path}")
    return path


@pytest.fixture
def url(tmp_path, empty_database):
    shutil.copyfile(empty_database, tmp_path / "optuna.db")
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def test_where_the_study_is_kept(tmp_path, monkeypatch):
    server = "http://127.0.0.1:5000"
    beside = f"sqlite:///{tmp_path / 'track' / 'optuna.db'}"
    assert storage_url(str(tmp_path), f"sqlite:///{tmp_path}/track/mlflow.db") == beside
    assert storage_url(str(tmp_path), server) == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert storage_url("s3://bucket/runs", server) is None  # nowhere shared to put a file
    monkeypatch.setenv(ENV, "postgresql://db.internal/optuna")
    assert storage_url("s3://bucket/runs", server) == "postgresql://db.internal/optuna"
    monkeypatch.setenv(ENV, "none")
    assert storage_url(str(tmp_path), f"sqlite:///{tmp_path}/mlflow.db") is None
    assert study_name("sweep") == "sweep" and study_name("s1", "study") == "study.s1"


@pytest.mark.parametrize(
    "url, why", [("ftp://x", "unknown database kind"), ("not a url", "not a database URL")]
)
def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch, url, why):
    monkeypatch.setenv(ENV, url)
    with pytest.raises(StorageError) as err:
        check_url(url)
    message = str(err.value)
    assert message.startswith(f"{ENV} {url}: {why}") and "\n" not in message
    check_url("postgresql://user:secret@db.internal/optuna")  # its driver loads only later


def _ask(study):
    return study.ask(fixed_distributions=X)


def _frozen(study, asked):
    trials = study.get_trials(deepcopy=False)
    return {tid: trials[t.number] for tid, t in asked.items()}


def test_every_trial_with_its_state_and_values(url):
    mirror = StudyMirror(url, "demo", ["maximize"], ["val/balanced_accuracy"])
    mirror.start()
    study = optuna.create_study(direction="maximize")
    asked = {tid: _ask(study) for tid in ("done", "pruned", "failed")}
    for tid in asked:
        mirror.update(_frozen(study, asked), tid)
    asked["done"].report(0.4, 1)
    asked["done"].report(0.6, 2)
    asked["pruned"].report(0.1, 1)
    for tid in ("done", "pruned"):
        mirror.update(_frozen(study, asked), tid)
    study.tell(asked["done"], 0.6)
    study.tell(asked["pruned"], None, state=TrialState.PRUNED)  # as ASHA's stop is told
    study.tell(asked["failed"], None, state=TrialState.FAIL)
    for tid in asked:
        mirror.update(_frozen(study, asked), tid)

    stored = optuna.load_study(study_name="demo", storage=url)
    assert stored.metric_names == ["val/balanced_accuracy"]
    by_id = {t.user_attrs[TRIAL_ATTR]: t for t in stored.trials}
    assert len(stored.trials) == 3
    assert (by_id["done"].state, by_id["done"].values) == (TrialState.COMPLETE, [0.6])
    assert by_id["done"].intermediate_values == {1: 0.4, 2: 0.6}
    assert (by_id["pruned"].state, by_id["pruned"].values) == (TrialState.PRUNED, [0.1])
    assert (by_id["failed"].state, by_id["failed"].values) == (TrialState.FAIL, None)
    for tid, trial in asked.items():
        assert by_id[tid].params == trial.params


def test_a_resumed_sweep_continues_its_trials_and_marks_the_lost_one(url):
    mirror = StudyMirror(url, "demo", ["minimize"], ["train/loss"])
    mirror.start()
    study = optuna.create_study(direction="minimize")
    asked = {"a": _ask(study), "b": _ask(study)}
    for tid in asked:
        mirror.update(_frozen(study, asked), tid)
    study.tell(asked["a"], 0.3)
    asked["b"].report(0.9, 1)
    mirror.update(_frozen(study, asked), "a")
    mirror.update(_frozen(study, asked), "b")
    saved = pickle.dumps((study, asked, mirror))  # Tune's snapshot of the searcher
    asked["c"] = _ask(study)  # started after the snapshot, then the sweep is killed
    mirror.update(_frozen(study, asked), "c")

    study, asked, mirror = pickle.loads(saved)  # resume
    asked["b"].report(0.8, 2)
    mirror.update(_frozen(study, asked), "b")
    study.tell(asked["b"], 0.8)
    mirror.update(_frozen(study, asked), "b")
    asked["d"] = _ask(study)
    mirror.update(_frozen(study, asked), "d")

    stored = optuna.load_study(study_name="demo", storage=url).trials
    by_id = {t.user_attrs[TRIAL_ATTR]: t for t in stored}
    assert sorted(by_id) == ["a", "b", "c", "d"] and len(stored) == 4  # no duplicate
    assert by_id["a"].state == by_id["b"].state == TrialState.COMPLETE
    assert by_id["b"].intermediate_values == {1: 0.9, 2: 0.8} and by_id["b"].values == [0.8]
    assert by_id["c"].state == TrialState.FAIL and LOST_ATTR in by_id["c"].user_attrs
    assert by_id["d"].state == TrialState.RUNNING


def test_credentials_stay_out_of_the_saved_searcher_and_come_back_from_the_setting(
    monkeypatch,
):
    url = "postgresql://user:secret@db.internal/optuna"
    saved = pickle.dumps(StudyMirror(url, "demo", ["maximize"], ["m"]))
    assert b"secret" not in saved
    assert pickle.loads(saved).url == "postgresql://db.internal/optuna"
    monkeypatch.setenv(ENV, url)
    assert pickle.loads(saved).url == url


def test_a_new_sweep_replaces_the_study_of_its_name(url):
    StudyMirror(url, "demo", ["maximize"], ["m"]).start()
    optuna.load_study(study_name="demo", storage=url).add_trial(
        optuna.trial.create_trial(params={"x": 0.1}, distributions=X, value=1.0)
    )
    StudyMirror(url, "demo", ["maximize"], ["m"]).start()
    assert optuna.load_study(study_name="demo", storage=url).trials == []


def test_an_unreachable_database_never_stops_the_sweep(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    url = f"sqlite:///{blocker / 'optuna.db'}"  # a folder that is a file
    mirror = StudyMirror(url, "demo", ["maximize"], ["m"])
    with pytest.raises(StorageError, match="cannot open it"):
        mirror.start()
    study = optuna.create_study(direction="maximize")
    asked = {"a": _ask(study)}
    with caplog.at_level(logging.WARNING):
        mirror.update(_frozen(study, asked), "a")
        mirror.update(_frozen(study, asked), "a")  # within the retry wait: not tried
    mine = [r for r in caplog.records if r.name == "hmtl.orchestration.sweep.optuna_store"]
    assert len(mine) == 1 and "copied there again later" in mine[0].getMessage()


def test_the_searcher_copies_what_it_asks_and_tells(url):
    space = load_space("quickstart")
    mirror = StudyMirror(url, "q", ["maximize"], list(space.metrics))
    mirror.start()
    searcher = HmtlOptunaSearch(space, mirror, metric=space.metrics[0], mode="max")
    searcher.suggest("t1")
    searcher.on_trial_result("t1", {space.metrics[0]: 0.5, "epoch": 1})
    # ASHA stops the trial at epoch 2: Tune hands that result over only with the stop.
    searcher.on_trial_complete("t1", {space.metrics[0]: 0.4, "epoch": 2})
    (trial,) = optuna.load_study(study_name="q", storage=url).trials
    assert trial.user_attrs[TRIAL_ATTR] == "t1" and trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {1: 0.5, 2: 0.4} and trial.values == [0.4]
