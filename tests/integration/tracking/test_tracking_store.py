"""The embedded tracking database: made whole or not at all, from a cached empty template
after the first one (migrating MLflow's schema takes 1 to 2 s of CPU per database)."""

import pytest
from mlflow.tracking import MlflowClient

from hmtl.orchestration.tracking.probe import create_local_store, empty_store

pytestmark = pytest.mark.integration


def test_later_databases_are_copies_of_the_first_and_point_beside_themselves(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = empty_store()
    assert not template.exists()
    for name in ("first", "second"):
        uri = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
        create_local_store(uri)
        assert template.exists()  # kept by the first, used by the second
        client = MlflowClient(uri)
        default = client.get_experiment("0")
        assert default.artifact_location == (tmp_path / name / "mlflow-artifacts/0").as_uri()
        made = client.create_experiment("x", artifact_location=str(tmp_path / name / "a"))
        run = client.create_run(made)
        client.log_metric(run.info.run_id, "m", 1.0, step=1)
        assert [e.name for e in client.search_experiments()] == ["x", "Default"]
    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == ["mlflow.db"]


def test_a_damaged_template_is_migrated_past(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    empty_store().parent.mkdir(parents=True)
    empty_store().write_bytes(b"not a database")
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    create_local_store(uri)
    assert MlflowClient(uri).get_experiment("0").name == "Default"
    assert empty_store().stat().st_size > 1000  # replaced by a good one
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mlflow.db"]
