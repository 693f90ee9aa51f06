"""Every learnable part of the region-aware graph trains, and what it learns changes the answer.

A zero-initialised layer followed by a ReLU outputs exactly 0 with gradient 0 and never trains
(the proposal graph's output and the type graph's propagation once did): these tests train a
tiny detector for a few steps and check every graph parameter.
"""

from __future__ import annotations

import copy

import pytest
import torch
from model_fixtures import tiny_batch, tiny_config, tiny_genotype

from fsd.models import build_detector
from fsd.models.detector import LesionDetector

STEPS = 6


def _train(model: LesionDetector, steps: int = STEPS) -> dict[str, bool]:
    """Train on the tiny batch; returns, per parameter of the box predictor, whether it ever got a
    nonzero gradient."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    images, targets = tiny_batch()
    predictor = model.roi_heads.box_predictor
    got_gradient = {name: False for name, _ in predictor.named_parameters()}
    model.train()
    for _ in range(steps):
        losses, _ = model(images, targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        for name, parameter in predictor.named_parameters():
            if parameter.grad is not None and bool(parameter.grad.abs().sum() > 0):
                got_gradient[name] = True
        optimizer.step()
    return got_gradient


def _graph_model(seed: int = 0, **graph: bool) -> LesionDetector:
    torch.manual_seed(seed)
    config = tiny_config(graph=True)
    config = config.model_copy(update={"model": config.model.model_copy(update={"graph": config.model.graph.model_copy(update=graph)})})
    return build_detector(tiny_genotype(), config)


@pytest.mark.parametrize("detach", [True, False])
def test_every_graph_parameter_receives_a_gradient_and_moves(detach: bool):
    model = _graph_model(detach_position=detach)
    predictor = model.roi_heads.box_predictor
    before = copy.deepcopy(predictor.state_dict())
    got_gradient = _train(model)
    assert [name for name, got in got_gradient.items() if not got] == []
    unmoved = [name for name, parameter in predictor.named_parameters() if torch.equal(parameter.detach(), before[name])]
    assert unmoved == []
    # the branches that once stayed dead: zero-initialised, now trained away from zero
    assert float(predictor.region_graph.proposal_graph.out.weight.detach().abs().sum()) > 0
    assert float(predictor.type_graph.propagate.weight.detach().abs().sum()) > 0
    assert not torch.allclose(predictor.type_graph.adjacency_logits, before["type_graph.adjacency_logits"])


def test_without_position_the_graph_trains_and_has_no_position_parts():
    model = _graph_model(position=False)
    names = [name for name, _ in model.roi_heads.box_predictor.named_parameters()]
    assert not any(name.startswith(("geometry", "region_graph.region")) for name in names)
    assert all(_train(model).values())


def _logits(model: LesionDetector) -> torch.Tensor:
    """The trained model's class logits for fixed RoIs of the tiny batch."""
    images, targets = tiny_batch()
    model.eval()
    with torch.no_grad():
        batch, bodies = model.transform(images)
        features = model.neck(model.backbone(batch.tensors))
        rois = [t["boxes"] for t in targets]
        heads = model.roi_heads
        box_features = heads.box_head(heads.box_roi_pool(features, rois, batch.image_sizes))
        z = heads.slice_position(features["p4"], features["p5"])
        logits, _, _ = heads.box_predictor(box_features, rois, box_features, rois, bodies, z)
    return logits


@pytest.mark.parametrize("branch", ["region_graph.proposal_graph.out", "type_graph.out", "type_graph.propagate", "region_graph.region.2"])
def test_after_training_each_graph_branch_changes_the_answer(branch: str):
    model = _graph_model()
    _train(model)
    trained = _logits(model)
    layer = model.roi_heads.box_predictor.get_submodule(branch)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
    assert not torch.allclose(_logits(model), trained, atol=1e-6), f"{branch} contributes nothing after training"


def test_graph_on_and_off_answer_differently_after_the_same_training():
    on = _graph_model()
    torch.manual_seed(0)
    off = build_detector(tiny_genotype(), tiny_config(graph=False))
    _train(on)
    _train(off)
    images, _ = tiny_batch()
    on.eval()
    off.eval()
    with torch.no_grad():
        _, on_detections = on(images)
        _, off_detections = off(images)
    assert any(
        a["type_scores"].shape != b["type_scores"].shape or not torch.allclose(a["type_scores"], b["type_scores"], atol=1e-4)
        for a, b in zip(on_detections, off_detections)
    )
