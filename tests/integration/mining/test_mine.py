"""`hmtl mine` end to end: the published card, the embedding cache, planted test duplicates,
an empty selection (in-process engine), and one run on local Ray Data after `hmtl train`."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from mining_helpers import labelled_set, pool_set, primitive_checkpoint

from hmtl.orchestration.cli.main import main
from hmtl.trainables.config import build_config
from hmtl.trainables.data.dataset import assign_splits
from hmtl.trainables.data.prepared import read_prepared
from hmtl.trainables.data.synthetic import render_faces

pytestmark = pytest.mark.integration
LOOSE = ["--min-similarity", "-1", "--min-confidence", "0", "--no-agree"]
# An untrained network's ReLU features all point one way (cosines near 1); only exact copies
# reach this threshold, which is what the planted duplicates are.
EXACT = ["--exclude-similarity", "0.99999"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A primitive checkpoint, a labelled set, and a pool holding 3 planted copies of the
    labelled set's test-split faces among 60 fresh ones."""
    root = tmp_path_factory.mktemp("mine")
    model = primitive_checkpoint(root / "ckpt")
    labelled = labelled_set(root / "data", n=120)
    prepared = read_prepared(labelled)
    split = assign_splits(prepared, build_config({}).data)  # the checkpoint's data settings
    test_rows = np.flatnonzero(split == "test")[:3]
    fresh = render_faces(60, size=48, channels=1, seed=1).images
    planted = [5, 30, 59]
    images = np.insert(fresh, [p - i for i, p in enumerate(planted)], prepared.images[test_rows], 0)
    assert (images[planted] == prepared.images[test_rows]).all()
    pool = pool_set(root / "data", images)
    return root, model, labelled, pool, planted


def mine(world, out, *extra):
    root, model, labelled, pool, _ = world
    args = [
        "mine",
        "--model",
        str(model),
        "--pool",
        str(pool),
        "--labelled",
        str(labelled),
        "--out",
        str(out),
        "--engine",
        "local",
        "--cache",
        str(root / "cache"),
        *extra,
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output, Path(
        next(
            line.split()[-1]
            for line in result.output.splitlines()
            if line.startswith(("published", "reused"))
        )
    )


def rows_of(folder: Path):
    card = json.loads((folder / "card.json").read_text())
    return pa.concat_tables([pq.read_table(folder / shard) for shard in card["shards"]])


def test_card_provenance_counts_and_rows(world, tmp_path):
    _, model, labelled, pool, planted = world
    _, folder = mine(world, tmp_path / "out", *LOOSE, *EXACT, "--per-class", "4")
    card = json.loads((folder / "card.json").read_text())
    info = card["mining"]
    from hmtl.orchestration.tracking.pretrained import sha256_of

    assert info["model"]["sha256"] == sha256_of(model)
    assert info["pool"] == {
        "uri": str(pool),
        "fingerprint": json.loads((pool / "card.json").read_text())["fingerprint"],
        "num_rows": 63,
    }
    assert (
        info["labelled"]["fingerprint"]
        == json.loads((labelled / "card.json").read_text())["fingerprint"]
    )
    settings = info["settings"]
    assert (settings["min_similarity"], settings["min_confidence"], settings["agree"]) == (
        -1.0,
        0.0,
        False,
    )
    assert settings["per_class"] == 4 and settings["exclude_similarity"] == 0.99999
    counts = info["counts"]
    assert list(counts) == [
        "pool",
        "min_similarity",
        "min_confidence",
        "agree",
        "exclude",
        "per_class",
    ]
    assert sum(counts["pool"].values()) == 63 == sum(counts["agree"].values())
    assert all(counts["per_class"][c] == min(4, counts["exclude"][c]) for c in counts["pool"])
    # The card's counts are the rows' own: pseudo-labels, scores, split, no planted face.
    table = rows_of(folder)
    labels = np.bincount(table.column("expression").to_numpy(), minlength=8)
    assert (
        labels.tolist()
        == list(counts["per_class"].values())
        == [card["counts"]["train"][c] for c in counts["pool"]]
    )
    assert set(table.column("split").to_pylist()) == {"train"}
    assert not set(planted) & set(table.column("pool_row").to_pylist())
    assert (table.column("mining_similarity").to_numpy() >= -1).all()


def test_planted_test_faces_are_excluded(world, tmp_path):
    _, folder = mine(world, tmp_path / "out", *LOOSE, *EXACT)
    card = json.loads((folder / "card.json").read_text())
    counts = card["mining"]["counts"]
    assert sum(counts["agree"].values()) - sum(counts["exclude"].values()) >= 3
    rows = set(rows_of(folder).column("pool_row").to_pylist())
    assert not rows & set(world[4]) and len(rows) >= 60 - card["mining"]["near_duplicates_in_pool"]


def test_second_run_reuses_the_embeddings_and_the_dataset(world, tmp_path):
    _, folder = mine(world, tmp_path / "out", *LOOSE, *EXACT)
    cached = sorted((world[0] / "cache").glob("*/meta.json"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    second, again = mine(world, tmp_path / "out", *LOOSE, *EXACT)
    assert again == folder and "reused" in second
    assert second.count("(cached)") == 2 and "(computed)" not in second
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_empty_selection_publishes_nothing(world, tmp_path):
    root, model, labelled, pool, _ = world
    out = tmp_path / "out"
    args = [
        "mine",
        "--model",
        str(model),
        "--pool",
        str(pool),
        "--labelled",
        str(labelled),
        "--out",
        str(out),
        "--engine",
        "local",
        "--cache",
        str(root / "cache"),
        "--min-similarity",
        "1.0",
        "--min-confidence",
        "1.0",
    ]
    result = CliRunner().invoke(main, args)
    # After the progress lines (the pool had to be embedded to know), one error line.
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("hmtl: error: ")]
    assert len(errors) == 1 and "no pool face passed the filters" in errors[0]
    assert result.output.strip().splitlines()[-1] == errors[0]
    assert not out.exists()


def test_training_on_mined_rows_is_tagged_with_their_fingerprint(world, tmp_path):
    from mlflow.tracking import MlflowClient

    _, folder = mine(world, tmp_path / "out", *LOOSE, *EXACT)
    fingerprint = json.loads((folder / "card.json").read_text())["fingerprint"]
    config = tmp_path / "retrain.yaml"
    config.write_text(json.dumps(tiny_train_config(tmp_path)))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "train",
        str(config),
        "--out",
        str(tmp_path / "run"),
        "--tracking-uri",
        tracking,
        "--set",
        f"data.extra_sources=[{folder}]",
        "--set",
        "data.extra_weight=0.5",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run,) = MlflowClient(tracking).search_runs(
        [MlflowClient(tracking).get_experiment_by_name("hmtl-train").experiment_id]
    )
    assert run.data.tags["hmtl.extra_fingerprints"] == fingerprint
    assert run.data.tags["hmtl.extra_sources"] == str(folder)
    assert run.data.params["data.extra_weight"] == "0.5"
    card = json.loads((tmp_path / "run" / "checkpoint_000001" / "card.json").read_text())
    assert card["extra_sources"][0]["fingerprint"] == fingerprint


def tiny_train_config(tmp_path):
    """`hmtl train` in seconds: 400 synthetic 48 px faces, an 8-wide CNN, one epoch."""
    return {
        "data": {
            "cache_dir": str(tmp_path / "ds"),
            "image_size": 48,
            "batch_size": 64,
            "synthetic": {"num_samples": 400, "num_identities": 40},
        },
        "model": {"width": 8},
        "schedule": {"epochs": 1, "warmup_epochs": 0.5},
        "runtime": {"device": "cpu", "num_threads": 1},
    }


def test_mine_on_ray_data_after_hmtl_train(local_ray, tmp_path):
    """A tiny model trained 1 epoch by `hmtl train`, then `hmtl mine` on Ray Data actors
    over a 300-face smoke pool; the Ray and in-process engines give the same dataset."""
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(tiny_train_config(tmp_path)))
    runner = CliRunner()
    trained = runner.invoke(main, ["train", str(config), "--out", str(tmp_path / "run")])
    assert trained.exit_code == 0, trained.output
    checkpoint = tmp_path / "run" / "checkpoint_000001"
    common = [
        "mine",
        "--model",
        str(checkpoint),
        "--pool",
        "synthetic:300",
        "--labelled",
        "synthetic",
        "--min-similarity",
        "0.3",
        "--min-confidence",
        "0",
        "--per-class",
        "20",
    ]
    ray_run = runner.invoke(
        main,
        [*common, "--out", str(tmp_path / "a"), "--cache", str(tmp_path / "c1"), "--actors", "1"],
    )
    assert ray_run.exit_code == 0, ray_run.output
    assert "engine ray (1 CPU actors)" in ray_run.output
    local = runner.invoke(
        main,
        [
            *common,
            "--out",
            str(tmp_path / "b"),
            "--cache",
            str(tmp_path / "c2"),
            "--engine",
            "local",
        ],
    )
    assert local.exit_code == 0, local.output
    a = next((tmp_path / "a" / "mined").glob("*/card.json"))
    b = next((tmp_path / "b" / "mined").glob("*/card.json"))
    assert a.parent.name == b.parent.name  # same rows, scores and provenance
    card = json.loads(a.read_text())
    assert card["mining"]["pool"]["num_rows"] == 300 and card["num_rows"] > 0
    assert max(card["mining"]["counts"]["per_class"].values()) <= 20


def test_mine_a_pool_on_s3_with_ray_data(local_ray, s3_server, world, tmp_path):
    """The pool streamed from S3 (moto) by Ray Data actors gives the rows and scores the
    in-process engine gives for the same pool on local disk."""
    _, model, labelled, pool, _ = world
    remote = pool_set(s3_server.uri("pools"), read_prepared(pool).images)
    tables = []
    for where, engine in ((remote, "ray"), (pool, "local")):
        args = [
            "mine",
            "--model",
            str(model),
            "--pool",
            str(where),
            "--labelled",
            str(labelled),
            "--out",
            str(tmp_path / engine),
            "--engine",
            engine,
            "--actors",
            "1",
            "--cache",
            str(tmp_path / f"cache-{engine}"),
            *LOOSE,
            *EXACT,
        ]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "(computed)" in result.output
        tables.append(rows_of(next((tmp_path / engine / "mined").glob("*/card.json")).parent))
    s3_rows, local_rows = tables
    assert s3_rows.column("pool_row").to_pylist() == local_rows.column("pool_row").to_pylist()
    assert s3_rows.column("expression").equals(local_rows.column("expression"))
    assert np.allclose(
        s3_rows.column("mining_similarity").to_numpy(),
        local_rows.column("mining_similarity").to_numpy(),
        atol=1e-5,
    )
