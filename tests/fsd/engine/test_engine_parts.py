"""Resumability building blocks: sampler, schedule, atomic checkpoints, metric logs, augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fsd.artifacts import ArtifactError, Checkpoint, RunPosition, load_checkpoint, save_checkpoint
from fsd.config import FsdConfig
from fsd.data.augment import AugmentConfig, augment, sample_generator
from fsd.engine.metrics_log import MetricsLog, read_log
from fsd.engine.sampler import ResumableSampler
from fsd.engine.schedule import lr_at


def test_sampler_order_depends_only_on_seed_and_epoch():
    a = ResumableSampler(10, 2, seed=3)
    b = ResumableSampler(10, 2, seed=3)
    a.set_epoch(4)
    b.set_epoch(4)
    assert list(a) == list(b)
    b.set_epoch(5)
    assert list(a) != list(b)
    assert sorted(a) == list(range(10))


def test_sampler_resumes_mid_epoch_and_splits_ranks():
    full = ResumableSampler(11, 2, seed=0)
    full.set_epoch(2)
    order = list(full)
    full.set_epoch(2, start_batch=3)
    assert list(full) == order[6:] and len(full) == len(order) - 6
    ranks = [ResumableSampler(11, 2, seed=0, rank=r, world_size=2) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(1)
    parts = [list(s) for s in ranks]
    assert len(parts[0]) == len(parts[1]) == 6
    assert set(parts[0]) | set(parts[1]) == set(range(11))
    with pytest.raises(ValueError):
        ResumableSampler(0, 2, seed=0)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    assert lr_at(0, 100, 1.0, 10, 0.1) == pytest.approx(0.001)
    assert lr_at(5, 100, 1.0, 10, 0.1) == pytest.approx(0.5005)
    assert lr_at(10, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    values = [lr_at(i, 100, 1.0, 10, 0.1) for i in range(10, 101)]
    assert all(x >= y for x, y in zip(values, values[1:]))


def _checkpoint(iteration: int) -> Checkpoint:
    from fsd.models import DetectorConfig

    return Checkpoint(
        kind="train",
        model={"w": torch.ones(2)},
        optimizer={},
        architecture={"kind": "resnet18_fpn"},
        detector_config=DetectorConfig(),
        config=FsdConfig(),
        position=RunPosition(iteration=iteration),
    )


def test_atomic_save_never_leaves_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "last.pt"
    save_checkpoint(_checkpoint(1), path)

    def broken_save(obj, stream):
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(_checkpoint(2), path)
    monkeypatch.undo()
    assert load_checkpoint(path).position.iteration == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_load_checkpoint_errors_are_clear(tmp_path: Path):
    with pytest.raises(ArtifactError, match="not found"):
        load_checkpoint(tmp_path / "x.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ArtifactError, match="not an FSD checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoints_of_another_format_version_or_kind_are_refused(tmp_path: Path):
    old = {**_checkpoint(3).to_dict(), "format_version": 1}
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ArtifactError, match="format version 1, this FSD reads version 2"):
        load_checkpoint(tmp_path / "old.pt")
    unversioned = {"format": "fsd-checkpoint", "model": {}, "iteration": 3}  # what FSD 0.1 wrote
    torch.save(unversioned, tmp_path / "unversioned.pt")
    with pytest.raises(ArtifactError, match="format version 1"):
        load_checkpoint(tmp_path / "unversioned.pt")
    save_checkpoint(_checkpoint(3), tmp_path / "train.pt")
    with pytest.raises(ArtifactError, match="is a train checkpoint; this needs a search checkpoint"):
        load_checkpoint(tmp_path / "train.pt", kind="search")
    assert load_checkpoint(tmp_path / "train.pt", kind="train").position.iteration == 3


def test_metrics_log_is_cut_back_on_resume(tmp_path: Path):
    path = tmp_path / "m.jsonl"
    log = MetricsLog(path)
    for i in range(1, 6):
        log.write({"type": "train", "iteration": i, "loss": float(i)})
    with path.open("a") as handle:
        handle.write('{"type": "train", "iter')  # a line cut short by a kill
    resumed = MetricsLog(path, resume_iteration=3)
    resumed.write({"type": "train", "iteration": 4, "loss": 40.0})
    assert [(r["iteration"], r["loss"]) for r in read_log(path)] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]


def test_augmentation_keeps_boxes_on_the_bright_square():
    image = torch.zeros(3, 64, 64)
    image[:, 20:30, 30:44] = 1.0
    target = {
        "boxes": torch.tensor([[30.0, 20.0, 44.0, 30.0]]),
        "labels": torch.tensor([2]),
        "sizes_mm": torch.tensor([10.0]),
        "image_id": torch.tensor([0]),
    }
    config = AugmentConfig(hflip=0.5, scale_range=(0.7, 1.3), translate_px=8, intensity_jitter=0.0)
    for index in range(20):
        out, new = augment(image, target, config, sample_generator(1, 0, index))
        assert torch.equal(image[:, 20:30, 30:44], torch.ones(3, 10, 14))  # input untouched
        x1, y1, x2, y2 = new["boxes"][0].tolist()
        inside = out[1, int(y1) + 1 : int(y2) - 1, int(x1) + 1 : int(x2) - 1]
        assert float(inside.mean()) > 0.9
        assert new["labels"].tolist() == [2] and new["image_id"].tolist() == [0]
    first, _ = augment(image, target, config, sample_generator(1, 0, 5))
    second, _ = augment(image, target, config, sample_generator(1, 0, 5))
    assert torch.equal(first, second)


def test_augmentation_drops_lesions_pushed_out_of_the_image():
    image = torch.zeros(3, 32, 32)
    target = {"boxes": torch.tensor([[0.0, 0.0, 6.0, 6.0], [10.0, 10.0, 20.0, 20.0]]), "labels": torch.tensor([1, 1])}
    config = AugmentConfig(scale_range=(1.0, 1.0), translate_px=0, intensity_jitter=0.0, hflip=0.0)
    out, new = augment(image, {**target, "boxes": target["boxes"] - torch.tensor([5.0, 5.0, 5.0, 5.0])}, config, sample_generator(0, 0, 0))
    assert new["boxes"].shape == (1, 4) and new["labels"].tolist() == [1]
