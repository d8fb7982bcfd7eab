"""`hmtl train` and `hmtl data` on bad input: one `hmtl: error:` line naming the problem,
exit 2, no traceback, and no folder left behind (run folder, dataset folder, scratch)."""

import contextlib
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from helpers import refused

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.tracking.single_run import local_checkpoint
from hmtl.trainables.models import build_backbone


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temp directory of this test's own, so leftover scratch folders can be counted."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def write_config(tmp_path):
    def write(tree: dict, name: str = "c.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tree))
        return path

    return write


def test_empty_config_file_is_refused_not_trained_on_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    refused(["train", str(path), "--out", str(tmp_path / "run")], f"{path}: empty config file")
    assert not (tmp_path / "run").exists()


def test_pretrained_random_bytes_names_the_file(tmp_path, write_config):
    weights = tmp_path / "random.pt"
    weights.write_bytes(torch.randint(0, 256, (2048,), dtype=torch.uint8).numpy().tobytes())
    config = write_config({"model": {"pretrained": str(weights)}})
    refused(
        ["train", str(config), "--out", str(tmp_path / "run")],
        f"model.pretrained: {weights}: not a loadable torch file",
    )
    assert not (tmp_path / "run").exists()


def test_pretrained_of_another_architecture_says_so(tmp_path, write_config):
    weights = tmp_path / "resnet18.pt"
    torch.save(build_backbone("resnet18", 1).state_dict(), weights)
    config = write_config({"model": {"backbone": "small_cnn", "pretrained": str(weights)}})
    line = refused(
        ["train", str(config), "--out", str(tmp_path / "run")],
        f"{weights}: weights of another architecture",
    )
    assert "model.backbone" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("below", ["", "sub/run"])
def test_out_at_or_under_a_regular_file(tmp_path, write_config, below):
    (tmp_path / "taken").write_text("a file\n")
    out = tmp_path / "taken" / below if below else tmp_path / "taken"
    config = write_config({"schedule": {"epochs": 1, "warmup_epochs": 0}})
    refused(["train", str(config), "--out", str(out)], f"{tmp_path / 'taken'} is a file")
    assert (tmp_path / "taken").read_text() == "a file\n"


def test_failure_on_the_data_removes_the_folders_it_made(tmp_path, write_config):
    not_a_dataset = tmp_path / "photos"
    not_a_dataset.mkdir()
    config = write_config({"data": {"source": str(not_a_dataset)}})
    out = tmp_path / "runs" / "train" / "x"
    result = CliRunner().invoke(main, ["train", str(config), "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("hmtl: error: ")
    assert "card.json" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_missing_dataset_folder_is_refused_before_the_header(tmp_path, write_config):
    config = write_config({"data": {"source": str(tmp_path / "nope")}})
    refused(["train", str(config), "--out", str(tmp_path / "run")], "no such dataset folder")
    assert not (tmp_path / "run").exists()


def test_resume_from_a_missing_remote_checkpoint_leaves_no_scratch(tmp_path, private_tmp):
    # file:// goes through the same fetch-to-scratch path as s3://.
    refused(
        ["train", "--resume", f"file://{tmp_path}/no-such-checkpoint"],
        "no-such-checkpoint",
    )
    assert list(private_tmp.glob("hmtl-train-*")) == []


@pytest.mark.parametrize("fails", [False, True])
def test_fetched_checkpoint_scratch_is_removed_after_training(tmp_path, private_tmp, fails):
    checkpoint = tmp_path / "checkpoint_000001"
    checkpoint.mkdir()
    (checkpoint / "checkpoint.pt").write_bytes(b"state")
    with contextlib.suppress(RuntimeError), local_checkpoint(f"file://{checkpoint}") as local:
        assert (Path(local) / "checkpoint.pt").read_bytes() == b"state"
        assert len(list(private_tmp.glob("hmtl-train-*"))) == 1
        if fails:
            raise RuntimeError("training failed")
    assert list(private_tmp.glob("hmtl-train-*")) == []


def test_data_prepare_of_a_bad_source_leaves_no_output_folder(tmp_path):
    source = tmp_path / "fer2013.csv"
    source.write_text("a,b\n1,2\n")
    out = tmp_path / "out"
    refused(["data", "prepare", "fer2013", str(source), "--out", str(out)], "expected header")
    assert not out.exists()
    out.mkdir()
    refused(["data", "prepare", "fer2013", str(source), "--out", str(out)], "expected header")
    assert list(out.iterdir()) == []


def test_data_inspect_of_a_file_is_one_line(tmp_path):
    path = tmp_path / "card.txt"
    path.write_text("x\n")
    refused(["data", "inspect", str(path)], "not a prepared dataset folder")


def test_data_inspect_of_an_unsupported_scheme_says_so():
    refused(["data", "inspect", "ftp://host/data"], "ftp://host/data: unsupported storage scheme")


def test_damaged_checkpoint_is_refused_before_the_header(tmp_path, write_config):
    damaged = tmp_path / "checkpoint_000001"
    damaged.mkdir()
    (damaged / "checkpoint.pt").write_bytes(b"not a checkpoint")
    config = write_config({"schedule": {"epochs": 1, "warmup_epochs": 0}})
    out = tmp_path / "run"
    args = ["train", str(config), "--resume", str(damaged), "--out", str(out)]
    refused(args, "corrupt or unreadable checkpoint")
    assert not out.exists()


def test_tracking_uri_that_is_no_mlflow_store(tmp_path, write_config):
    config = write_config({"schedule": {"epochs": 1, "warmup_epochs": 0}})
    out = tmp_path / "run"
    args = ["train", str(config), "--tracking-uri", "bogus://x", "--out", str(out)]
    refused(args, "--tracking-uri bogus://x: not an MLflow tracking URI")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_without_cuda_is_refused_before_the_header(tmp_path, write_config):
    config = write_config({"runtime": {"device": "cuda"}})
    line = refused(["train", str(config), "--out", str(tmp_path / "run")], "no CUDA device")
    assert line.startswith("hmtl: error: runtime.device: cuda, but this machine has no CUDA")
    assert not (tmp_path / "run").exists()


def test_a_source_folder_without_a_card_is_one_line(tmp_path, write_config):
    folder = tmp_path / "raw-images"
    folder.mkdir()
    config = write_config({"data": {"source": str(folder)}})
    refused(["train", str(config), "--out", str(tmp_path / "run")], "no dataset card (card.json)")
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_another_model_is_one_line_and_leaves_no_scratch(
    tmp_path, write_config, private_tmp
):
    checkpoint = tmp_path / "checkpoint_000001"
    checkpoint.mkdir()
    weights = build_backbone("small_cnn", 1, width=8).state_dict()
    state = {"model": {f"backbone.{k}": v for k, v in weights.items()}, "epoch": 1}
    state.update(optimizer={}, scheduler={}, rng={}, config={})
    torch.save(state, checkpoint / "checkpoint.pt")
    config = write_config({"model": {"backbone": "small_cnn", "width": 16}})
    args = ["train", str(config), "--resume", str(checkpoint), "--out", str(tmp_path / "run")]
    line = refused(args, "does not fit this config's model (backbone.")
    assert "model.width 16" in line
    assert not (tmp_path / "run").exists()
    assert list(private_tmp.iterdir()) == []  # no torchinductor_* cache, no scratch
