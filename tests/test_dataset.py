"""Dataset build: reproducible to the byte, split by trip, test traces never seen in training."""
import json

import numpy as np
import pytest

from harness.tools.cli import main
from harness.world.dataset import COLUMNS, HELD_OUT_CYCLES, build_dataset, read_trip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    args = dict(seed=1, train=3, val=2, test=2, trip_duration_s=900.0, progress=lambda message: None)
    return build_dataset(root / "D1", **args), build_dataset(root / "D2", **args), root


def test_same_seed_gives_byte_identical_files(built):
    _, _, root = built
    files1 = sorted(p.relative_to(root / "D1") for p in (root / "D1").rglob("*") if p.is_file())
    files2 = sorted(p.relative_to(root / "D2") for p in (root / "D2").rglob("*") if p.is_file())
    assert files1 == files2 and len(files1) == 3 + 2 + 2 + len(HELD_OUT_CYCLES) + 1
    for rel in files1:
        assert (root / "D1" / rel).read_bytes() == (root / "D2" / rel).read_bytes(), rel


def test_another_seed_gives_other_trips(tmp_path, built):
    manifest, _, _ = built
    other = build_dataset(tmp_path, seed=2, train=3, val=2, test=2, trip_duration_s=900.0, progress=lambda m: None)
    assert other["dataset_sha256"] != manifest["dataset_sha256"]


def test_split_by_trip_and_test_traces_unseen_in_training(built):
    manifest, _, root = built
    splits = manifest["splits"]
    files = [f for split in splits.values() for f in split]
    assert len(files) == len(set(files))  # no trip in two splits
    by_split = {split: {t["trace_digest"] for t in manifest["trips"] if t["split"] == split} for split in splits}
    assert not by_split["train"] & by_split["test"]
    assert not by_split["train"] & by_split["val"]
    assert not by_split["val"] & by_split["test"]
    routes = {split: {t["route"] for t in manifest["trips"] if t["split"] == split} for split in splits}
    assert set(HELD_OUT_CYCLES) <= routes["test"] and not set(HELD_OUT_CYCLES) & (routes["train"] | routes["val"])
    assert manifest["seed"] == 1 and manifest["version"].startswith("dtg-dataset/")
    on_disk = json.loads((root / "D1" / "manifest.json").read_text())
    assert on_disk == manifest


def test_train_is_normal_only_and_labels_match_events(built):
    manifest, _, root = built
    for trip in manifest["trips"]:
        data = read_trip(root / "D1" / trip["file"])
        assert list(data) == list(COLUMNS)
        assert np.all(np.diff(data["t_s"]) == 1.0)  # 1 Hz, as the unit samples
        expected = np.zeros(len(data["t_s"]), dtype=bool)
        for event in trip["events"]:
            expected |= (data["t_s"] >= event["start_s"]) & (data["t_s"] < event["end_s"])
        np.testing.assert_array_equal(data["anomaly"] == 1, expected)
        if trip["split"] == "train":
            assert not trip["events"] and not data["anomaly"].any()
        else:
            assert trip["events"], trip["file"]
        assert np.all(data["fuel_rate_lph"] > 0)


def test_cli_builds_and_reports(tmp_path, capsys):
    assert main(["dataset", "build", "--out", str(tmp_path / "d"), "--seed", "3", "--train-trips", "1",
                 "--val-trips", "1", "--test-trips", "1", "--trip-duration-s", "600"]) == 0
    captured = capsys.readouterr()
    assert "[1/5]" in captured.err and "wrote 5 trips" in captured.out
