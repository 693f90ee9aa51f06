"""Every builder on tiny inputs: training losses, eval detections, TorchScript parity."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import tiny_batch, tiny_config, tiny_genotype

from fsd.models import architecture_record, build_baseline, build_detector, build_from_architecture
from fsd.models.baselines import BASELINES

NORMS = ["bn", "gn", "in", "ln", "bin", "iln", "sn", "ssn", "syncsn"]
EXPECTED_LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
#: the multi-type task trains the auxiliary classifier and the slice-position head, graph on or off
AUXILIARY_LOSSES = {"loss_classifier_base", "loss_slice_position"}


def _check_detections(detections: list[dict[str, torch.Tensor]], num_classes: int, sizes: list[tuple[int, int]]) -> None:
    assert len(detections) == len(sizes)
    for detection, (height, width) in zip(detections, sizes):
        boxes = detection["boxes"]
        assert boxes.dim() == 2 and boxes.shape[1] == 4
        assert detection["scores"].shape == (boxes.shape[0],)
        assert detection["type_scores"].shape == (boxes.shape[0], num_classes)
        if boxes.numel():
            assert float(boxes[:, 0::2].min()) >= 0 and float(boxes[:, 2].max()) <= width
            assert float(boxes[:, 1::2].min()) >= 0 and float(boxes[:, 3].max()) <= height
            assert bool((detection["labels"] >= 1).all()) and bool((detection["labels"] <= num_classes).all())
            assert torch.allclose(detection["type_scores"].sum(dim=1), torch.ones(boxes.shape[0]), atol=1e-4)
            scores = detection["scores"]
            assert bool(((scores >= 0) & (scores <= 1)).all())


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("graph", [False, True])
def test_fsd_detector_trains_evaluates_and_scripts(norm: str, graph: bool):
    torch.manual_seed(0)
    config = tiny_config(norm=norm, graph=graph)
    model = build_detector(tiny_genotype(), config)
    images, targets = tiny_batch()
    model.train()
    losses, detections = model(images, targets)
    assert set(losses) == EXPECTED_LOSSES | AUXILIARY_LOSSES and detections == []
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.stem.conv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        _, eager = model(images)
        _check_detections(eager, 8, [(64, 80), (48, 64)])
        scripted = torch.jit.script(model)
        _, script_detections = scripted(images)
    for a, b in zip(eager, script_detections):
        assert torch.allclose(a["boxes"], b["boxes"], atol=1e-4)
        assert torch.allclose(a["scores"], b["scores"], atol=1e-5)
        assert torch.equal(a["labels"], b["labels"])


def test_binary_task_has_one_class():
    model = build_detector(tiny_genotype(), tiny_config(task="binary"))
    model.eval()
    with torch.no_grad():
        _, detections = model(tiny_batch()[0])
    _check_detections(detections, 1, [(64, 80), (48, 64)])


def test_images_without_lesions_train():
    model = build_detector(tiny_genotype(), tiny_config())
    images, _ = tiny_batch()
    empty = [{"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}] * 2
    losses, _ = model(images, empty)
    assert torch.isfinite(sum(losses.values()))
    assert float(losses["loss_box_reg"].detach()) == 0.0


def test_bad_targets_are_rejected_with_a_message():
    model = build_detector(tiny_genotype(), tiny_config())
    images, targets = tiny_batch()
    with pytest.raises(ValueError, match="targets"):
        model(images)
    targets[0]["boxes"] = torch.tensor([[10.0, 10.0, 5.0, 20.0]])
    with pytest.raises(ValueError, match="positive width"):
        model(images, targets)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        model.eval()
        model([torch.rand(1, 32, 32)])


def test_seeded_builds_are_identical():
    config = tiny_config()
    torch.manual_seed(3)
    a = build_detector(tiny_genotype(), config)
    torch.manual_seed(3)
    b = build_detector(tiny_genotype(), config)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_share_the_contract(name: str):
    torch.manual_seed(0)
    model = build_baseline(name, tiny_config(norm="bn"))
    images, targets = tiny_batch()
    losses, _ = model(images, targets)
    assert set(losses) == EXPECTED_LOSSES | AUXILIARY_LOSSES and torch.isfinite(sum(losses.values()))
    model.eval()
    with torch.no_grad():
        _, detections = model(images)
    _check_detections(detections, 8, [(64, 80), (48, 64)])


def test_fsd_is_far_smaller_than_the_resnet50_baseline():
    from fsd.config import FsdConfig
    from fsd.models import DetectorConfig, default_genotype

    config = DetectorConfig.from_config(FsdConfig())
    fsd_params = sum(p.numel() for p in build_detector(default_genotype(), config).parameters())
    r50_params = sum(p.numel() for p in build_baseline("resnet50_fpn", config).parameters())
    assert r50_params > 40e6
    assert fsd_params < 0.6 * r50_params


def test_architecture_records_rebuild_the_same_network():
    config = tiny_config()
    for record in (architecture_record(genotype=tiny_genotype()), architecture_record(baseline="resnet18_fpn")):
        torch.manual_seed(0)
        model = build_from_architecture(record, config)
        assert isinstance(model, torch.nn.Module)
    with pytest.raises(ValueError):
        architecture_record()
