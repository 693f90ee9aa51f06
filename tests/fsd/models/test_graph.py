"""Region-aware graph: permutation equivariance, region features, the type prior."""

from __future__ import annotations

import pytest
import torch

from fsd.data.dl_info import KeySliceRecord, LesionRecord
from fsd.data.type_prior import type_prior_from_records
from fsd.models.body import body_boxes
from fsd.models.graph import RegionAwareGraph, TypeGraph, region_features
from fsd.models.predictor import GraphBoxPredictor


def _proposals(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    xy = torch.rand(count, 2, generator=generator) * 80
    wh = 4 + torch.rand(count, 2, generator=generator) * 30
    return torch.cat([xy, xy + wh], dim=1)


def _trained(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The module with every parameter drawn at random, as after training (the zero-initialised
    residual branches would otherwise hide what the graph does)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return module


BODIES = torch.tensor([[0.0, 0.0, 120.0, 100.0], [10.0, 5.0, 90.0, 95.0]])
SLICE_Z = torch.tensor([0.3, 0.6])


def _predict(predictor, features, proposals):
    """At test time the RoIs are their own context."""
    return predictor(features, proposals, features, proposals, BODIES, SLICE_Z)


def test_graph_predictor_is_permutation_equivariant_over_proposals():
    torch.manual_seed(0)
    predictor = _trained(GraphBoxPredictor(in_features=24, num_classes=8, hidden=16)).eval()
    proposals = [_proposals(7, 1), _proposals(5, 2)]
    features = torch.randn(12, 24)
    logits, deltas, base = _predict(predictor, features, proposals)
    permutation = torch.randperm(7)
    permuted_features = torch.cat([features[:7][permutation], features[7:]])
    permuted_logits, permuted_deltas, permuted_base = _predict(predictor, permuted_features, [proposals[0][permutation], proposals[1]])
    assert torch.allclose(permuted_logits[:7], logits[:7][permutation], atol=1e-5)
    assert torch.allclose(permuted_deltas[:7], deltas[:7][permutation], atol=1e-5)
    assert torch.allclose(permuted_base[7:], base[7:], atol=1e-5)


def test_an_untrained_graph_passes_features_through_and_boxes_come_from_pre_graph_features():
    torch.manual_seed(0)
    graph = RegionAwareGraph(dim=16, hidden=8)
    features = torch.randn(6, 16)
    proposals = [_proposals(3, 1), _proposals(3, 2)]
    enhanced, _, _ = graph(features, proposals, features, proposals, BODIES, SLICE_Z)
    assert torch.equal(enhanced, features), "every residual branch starts at zero"
    predictor = GraphBoxPredictor(in_features=16, num_classes=8, hidden=8)
    _, deltas, _ = _predict(_trained(predictor), features, proposals)
    assert torch.allclose(deltas, predictor.bbox_pred(features)), "box regression reads the features before the graph"


def test_proposals_of_one_image_do_not_affect_another():
    torch.manual_seed(0)
    graph = _trained(RegionAwareGraph(dim=16, hidden=8))
    features = torch.randn(6, 16)
    proposals = [_proposals(3, 1), _proposals(3, 2)]
    first, _, _ = graph(features, proposals, features, proposals, BODIES, SLICE_Z)
    changed = features.clone()
    changed[3:] = torch.randn(3, 16)
    second, _, _ = graph(changed, proposals, changed, proposals, BODIES, SLICE_Z)
    assert torch.allclose(first[:3], second[:3])
    assert not torch.allclose(first[3:], second[3:])


def test_messages_come_from_the_context_set():
    torch.manual_seed(0)
    graph = _trained(RegionAwareGraph(dim=16, hidden=8))
    body, z = BODIES[:1], SLICE_Z[:1]
    query = torch.randn(1, 16)
    query_box = [_proposals(1, 4)]
    context = torch.randn(4, 16)
    boxes = [_proposals(4, 3)]
    with_context, _, _ = graph(query, query_box, context, boxes, body, z)
    other_context, _, _ = graph(query, query_box, torch.randn(4, 16), boxes, body, z)
    assert not torch.allclose(with_context, other_context)
    # the same RoI among a test-time proposal set gets what it gets when training attends to that set
    together, _, _ = graph(context, boxes, context, boxes, body, z)
    alone, _, _ = graph(context[:1], [boxes[0][:1]], context, boxes, body, z)
    assert torch.allclose(together[:1], alone, atol=1e-6)


def test_the_type_graph_depends_on_the_image():
    torch.manual_seed(0)
    graph = _trained(TypeGraph(dim=16, hidden=8, num_types=8))
    features, weight = torch.randn(3, 16), torch.randn(9, 16)
    assert not torch.allclose(graph(features, torch.randn(16), weight), graph(features, torch.randn(16), weight))


def test_region_features_are_relative_to_the_body_and_carry_the_slice_position():
    body = torch.tensor([10.0, 20.0, 110.0, 220.0])
    features = region_features(torch.tensor([[50.0, 110.0, 70.0, 130.0]]), body, torch.tensor(0.25))
    assert features[0].tolist() == pytest.approx([0.5, 0.5, 0.2, 0.1, 0.25])


def test_body_boxes_find_the_body_in_each_image():
    images = torch.zeros(2, 3, 40, 50)
    images[0, 1, 5:30, 10:45] = 1.0
    boxes = body_boxes(images, [(40, 50), (20, 20)], threshold=0.5, channel=1)
    assert boxes[0].tolist() == [10.0, 5.0, 45.0, 30.0]
    assert boxes[1].tolist() == [0.0, 0.0, 20.0, 20.0]  # nothing above threshold: full image


def test_the_scanner_table_below_the_body_is_not_part_of_it():
    image = torch.zeros(1, 3, 60, 80)
    image[0, 1, 5:35, 20:60] = 1.0  # the body
    image[0, 1, 45:47, 0:80] = 1.0  # a board of the table, wider than the body, below its foam pad
    image[0, 1, 30:47, 2:4] = 1.0  # and its side, curved up beside the body
    assert body_boxes(image, [(60, 80)], threshold=0.5, channel=1, opening_px=5)[0].tolist() == [20.0, 5.0, 60.0, 35.0]
    assert body_boxes(image, [(60, 80)], threshold=0.5, channel=1)[0].tolist() == [0.0, 5.0, 80.0, 47.0], "without the opening"


def test_the_body_box_of_synthetic_ct_is_the_one_dl_info_locations_are_relative_to(tmp_path):
    """DL_info's Normalized_lesion_location x, y is relative to the body without the table: the
    model's body box reproduces it."""
    from fsd.config import FsdConfig
    from fsd.data.synth import generate_dataset
    from fsd.engine.datasets import build_dataset
    from fsd.models.body import opening_size_px

    generate_dataset(tmp_path, patients=4, size=256, seed=2, progress=False)
    config = FsdConfig.model_validate({"task": "binary", "data": {"root": tmp_path}, "preprocess": {"spacing_mm": 1.6, "max_size": 256}})
    threshold = config.preprocess.window_value(config.preprocess.body_threshold_hu)
    errors = []
    for split in ("train", "val", "test"):
        dataset = build_dataset(config, split)
        for index in range(len(dataset)):
            image, target = dataset[index]
            x1, y1, x2, y2 = body_boxes(image[None], [tuple(image.shape[1:])], threshold, 1, opening_size_px(1.6))[0].tolist()
            for box, lesion in zip(target["boxes"].tolist(), dataset.records[index].lesions):
                cx = ((box[0] + box[2]) / 2 - x1) / (x2 - x1)
                cy = ((box[1] + box[3]) / 2 - y1) / (y2 - y1)
                errors.append(max(abs(cx - lesion.location[0]), abs(cy - lesion.location[1])))
    assert len(errors) >= 5 and max(errors) < 0.03, errors


def _record(patient: int, types_locations: list[tuple[int, tuple[float, float, float]]]) -> KeySliceRecord:
    lesions = tuple(LesionRecord((0, 0, 1, 1), (0,) * 8, (1, 1), loc, t, False) for t, loc in types_locations)
    return KeySliceRecord(f"{patient:06d}_01_01_001.png", patient, 1, 1, 1, (1, 1), (1, 1, 1), (8, 8), (0, 1), "F", 50, 2, lesions)


def test_type_prior_reflects_co_occurrence_and_location():
    records = [
        _record(1, [(4, (0.3, 0.5, 0.5)), (6, (0.35, 0.55, 0.5))]),
        _record(2, [(4, (0.3, 0.5, 0.5)), (6, (0.35, 0.5, 0.5))]),
        _record(3, [(5, (0.7, 0.3, 0.2))]),
    ]
    prior = type_prior_from_records(records)
    assert prior.shape == (8, 8)
    assert torch.allclose(prior.sum(dim=1), torch.ones(8), atol=1e-5)
    assert bool((prior > 0).all())
    liver, lung, kidney = 3, 4, 5
    assert prior[liver, kidney] > prior[liver, lung]


def test_type_graph_prior_initialises_the_adjacency():
    graph = TypeGraph(dim=8, hidden=8, num_types=8)
    prior = torch.eye(8) * 10 + 1
    graph.set_prior(prior)
    adjacency = graph.adjacency()
    assert torch.allclose(adjacency.sum(dim=1), torch.ones(8), atol=1e-5)
    assert bool((adjacency.diagonal() > 0.5).all())
    assert "prior" in graph.state_dict() and "adjacency_logits" in graph.state_dict()
    with pytest.raises(ValueError, match="8x8"):
        graph.set_prior(torch.ones(3, 3))


def test_the_separable_square_maximum_equals_the_square_pooling():
    import torch.nn.functional as F

    from fsd.models.body import square_max

    x = (torch.rand(2, 1, 37, 41, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    for size in (3, 7, 11):
        assert torch.equal(square_max(x, size), F.max_pool2d(x, size, 1, size // 2))


def test_the_graph_changes_the_type_of_a_roi_not_whether_it_is_a_lesion():
    torch.manual_seed(0)
    predictor = _trained(GraphBoxPredictor(in_features=16, num_classes=8, hidden=8)).eval()
    features = torch.randn(6, 16)
    proposals = [_proposals(3, 1), _proposals(3, 2)]
    logits, _, _ = predictor(features, proposals, features, proposals, BODIES, SLICE_Z)
    moved, _, _ = predictor(features, proposals, torch.randn(6, 16), proposals, BODIES, torch.tensor([0.9, 0.1]))
    background = torch.softmax(logits, dim=1)[:, 0]
    assert torch.allclose(torch.softmax(moved, dim=1)[:, 0], background, atol=1e-6)
    assert not torch.allclose(torch.softmax(moved, dim=1)[:, 1:], torch.softmax(logits, dim=1)[:, 1:], atol=1e-4)
    assert torch.allclose(torch.softmax(logits, dim=1).sum(dim=1), torch.ones(6), atol=1e-5)
