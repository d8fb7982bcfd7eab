"""An unreachable tracking server is refused in one line before Ray starts or anything is
written: `hmtl sweep`, `hmtl resume` (the manifest's URI) and `hmtl report --tracking-uri`."""

import socket

import pytest
from click.testing import CliRunner
from helpers import tiny_space

from hmtl.orchestration.cli.main import main


@pytest.fixture
def dead_uri() -> str:
    """An HTTP URI on a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def refused_in_one_line(result, uri: str) -> None:
    import ray

    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) <= 2 and "Traceback" not in result.output  # the command's banner, if any
    assert lines[-1].startswith("hmtl: error: MLflow at ")
    assert uri in lines[-1] and "unreachable" in lines[-1]
    assert not ray.is_initialized()


def test_sweep_with_unreachable_tracking_server_writes_nothing(tmp_path, dead_uri):
    storage = tmp_path / "runs"
    args = ["sweep", "quickstart", "--storage", str(storage), "--tracking-uri", dead_uri]
    result = CliRunner().invoke(main, args)
    refused_in_one_line(result, dead_uri)
    assert not (storage / "sweeps").exists()


def test_resume_probes_the_manifests_tracking_server(tmp_path, dead_uri):
    from hmtl.orchestration.platform.store import Store
    from hmtl.orchestration.sweep.manifest import write_manifest

    write_manifest(Store.open(str(tmp_path / "runs")), tiny_space(tmp_path, name="s"), dead_uri)
    sweep = tmp_path / "runs" / "sweeps" / "s"
    refused_in_one_line(CliRunner().invoke(main, ["resume", str(sweep)]), dead_uri)
    assert sorted(p.name for p in sweep.iterdir()) == ["hmtl-sweep.json"]


def test_report_probes_an_explicit_tracking_uri(tmp_path, dead_uri):
    from hmtl.orchestration.platform.store import Store
    from hmtl.orchestration.sweep.manifest import write_manifest

    # A real sweep folder: a missing one is refused first, by the local check.
    write_manifest(
        Store.open(str(tmp_path / "runs")), tiny_space(tmp_path, name="s"), "sqlite:///unused.db"
    )
    sweep = tmp_path / "runs" / "sweeps" / "s"
    args = ["report", str(sweep), "--tracking-uri", dead_uri]
    refused_in_one_line(CliRunner().invoke(main, args), dead_uri)


def test_report_checks_its_folder_before_the_tracking_server(tmp_path, dead_uri):
    args = ["report", str(tmp_path / "nowhere"), "--tracking-uri", dead_uri]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert (
        result.output.strip()
        .splitlines()[-1]
        .endswith("not a sweep or study folder (no hmtl-sweep.json or hmtl-study.json)")
    )


def test_a_tracking_database_that_cannot_be_made_is_one_line(tmp_path):
    from hmtl.orchestration.tracking.probe import (
        TrackingError,
        start_tracking_store,
        wait_for_tracking_store,
    )

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    start_tracking_store(f"sqlite:///{blocker}/mlflow.db")  # its folder is a file
    with pytest.raises(TrackingError) as err:
        wait_for_tracking_store(f"sqlite:///{blocker}/mlflow.db")
    assert str(err.value).startswith(f"--tracking-uri sqlite:///{blocker}/mlflow.db: ")
    assert "\n" not in str(err.value)


def test_outages_are_transient_missing_files_and_rejections_are_not():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

    from hmtl.orchestration.tracking.probe import transient

    assert transient(ConnectionRefusedError(111, "Connection refused"))
    assert transient(OSError("AWS Error NETWORK_CONNECTION during GetObject"))
    assert transient(MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE))
    assert not transient(MlflowException("bad name", error_code=INVALID_PARAMETER_VALUE))
    assert not transient(FileNotFoundError(2, "No such file or directory"))
    assert not transient(PermissionError(13, "Permission denied"))
    assert not transient(ValueError("not a connection problem"))
