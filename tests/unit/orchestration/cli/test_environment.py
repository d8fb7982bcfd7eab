"""MLFLOW_TRACKING_URI and RAY_ADDRESS stand in for --tracking-uri and --address (the flag
wins, the summary line says which was used), `--address` is read the same way by every
command, and every bad input or address is one line before Ray or the network is asked."""

import time

import click
import pytest
import ray
from click.testing import CliRunner
from helpers import refused

from hmtl.orchestration.cli.address import address_problem
from hmtl.orchestration.cli.options import TRACKING_ENV, source, tracking_uri_option


@click.command()
@tracking_uri_option("none")
def _probe(tracking_uri):
    click.echo(f"{tracking_uri}{source('tracking_uri', TRACKING_ENV)}")


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--tracking-uri", "http://a:1"], {TRACKING_ENV: "http://b:2"}, "http://a:1"),
        ([], {TRACKING_ENV: "http://b:2"}, "http://b:2 (from MLFLOW_TRACKING_URI)"),
        ([], {}, "None (default)"),
    ],
)
def test_flag_beats_variable_beats_default(args, env, expected, monkeypatch):
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    assert CliRunner().invoke(_probe, args, env=env).output.strip() == expected


@pytest.mark.parametrize(
    "text", ["auto", "10.0.0.5:6379", "ray://head:10001", "http://127.0.0.1:8265", "https://h/"]
)
def test_ray_addresses_and_dashboard_urls_are_accepted(text):
    assert address_problem(text) is None


@pytest.mark.parametrize(
    "text", ["nope", "host:port", "host:0", "ftp://host:8265", "http://h:x", "http://h/api"]
)
def test_anything_else_is_not(text):
    assert address_problem(text) is not None


def test_variables_are_named_when_they_are_the_culprit(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://x")
    refused(["sweep", "quickstart"], "MLFLOW_TRACKING_URI=bogus://x: not an MLflow tracking URI")
    monkeypatch.setenv("RAY_ADDRESS", "not-an-address")
    refused(["study", "quickstart_study"], "RAY_ADDRESS=not-an-address: give auto, HOST:PORT")
    refused(["sweep", "quickstart", "--address", "nope"], "--address nope: give auto")
    assert not ray.is_initialized()


@pytest.mark.parametrize("command", [["sweep", "quickstart"], ["resume", "hmtl-runs/sweeps/q"]])
def test_a_dashboard_url_for_a_driver_here_points_to_submit(command, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    line = refused(command, "RAY_ADDRESS=http://127.0.0.1:8265: a dashboard URL")
    assert "hmtl submit" in line
    assert not ray.is_initialized()


def test_jobs_commands_take_a_ray_address_and_fail_fast_where_none_answers(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    start = time.monotonic()
    refused(["logs", "raysubmit_1"], "RAY_ADDRESS=127.0.0.1:1: nothing answers there")
    refused(["stop", "raysubmit_1", "--address", "127.0.0.1:1"], "--address 127.0.0.1:1:")
    assert time.monotonic() - start < 10


def test_storage_is_checked_before_the_tracking_server_is_asked(tmp_path):
    line = refused(
        ["sweep", "quickstart", "--storage", "ftp://x", "--tracking-uri", "http://127.0.0.1:9"],
        "--storage ftp://x: unsupported storage scheme",
    )
    assert "127.0.0.1:9" not in line


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("HMTL_TRACKING_BUDGET_S", "soon", "HMTL_TRACKING_BUDGET_S='soon': not a number of"),
        ("HMTL_STORAGE_RETRY_S", "-1", "HMTL_STORAGE_RETRY_S='-1': not a number of seconds"),
        ("HMTL_REUSE_ACTORS", "maybe", "HMTL_REUSE_ACTORS='maybe': not 1 or 0"),
    ],
)
def test_a_bad_hmtl_variable_stops_every_command_in_one_line(variable, value, needle, monkeypatch):
    monkeypatch.setenv(variable, value)
    refused(["status", "hmtl-runs/sweeps/none"], needle)
    refused(["sweep", "quickstart"], needle)
