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


def test_graph_predictor_is_permutation_equivariant_over_proposals():
    torch.manual_seed(0)
    predictor = GraphBoxPredictor(in_features=24, num_classes=8, hidden=16).eval()
    proposals = [_proposals(7, 1), _proposals(5, 2)]
    features = torch.randn(12, 24)
    bodies = torch.tensor([[0.0, 0.0, 120.0, 100.0], [10.0, 5.0, 90.0, 95.0]])
    logits, deltas, base = predictor(features, proposals, bodies)
    permutation = torch.randperm(7)
    permuted_features = torch.cat([features[:7][permutation], features[7:]])
    permuted_logits, permuted_deltas, permuted_base = predictor(permuted_features, [proposals[0][permutation], proposals[1]], bodies)
    assert torch.allclose(permuted_logits[:7], logits[:7][permutation], atol=1e-5)
    assert torch.allclose(permuted_deltas[:7], deltas[:7][permutation], atol=1e-5)
    assert torch.allclose(permuted_base[7:], base[7:], atol=1e-5)


def test_proposals_of_one_image_do_not_affect_another():
    torch.manual_seed(0)
    graph = RegionAwareGraph(dim=16, hidden=8)
    bodies = torch.tensor([[0.0, 0.0, 100.0, 100.0]] * 2)
    features = torch.randn(6, 16)
    first = graph(features, [_proposals(3, 1), _proposals(3, 2)], bodies)
    changed = features.clone()
    changed[3:] = torch.randn(3, 16)
    second = graph(changed, [_proposals(3, 1), _proposals(3, 2)], bodies)
    assert torch.allclose(first[:3], second[:3])
    assert not torch.allclose(first[3:], second[3:])


def test_messages_depend_on_other_proposals():
    torch.manual_seed(0)
    graph = RegionAwareGraph(dim=16, hidden=8)
    body = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    features = torch.randn(4, 16)
    alone = graph(features[:1], [_proposals(4, 3)[:1]], body)
    together = graph(features, [_proposals(4, 3)], body)
    assert not torch.allclose(alone[0], together[0])


def test_region_features_are_relative_to_the_body():
    body = torch.tensor([10.0, 20.0, 110.0, 220.0])
    features = region_features(torch.tensor([[50.0, 110.0, 70.0, 130.0]]), body)
    assert features[0].tolist() == pytest.approx([0.5, 0.5, 0.2, 0.1])


def test_body_boxes_find_the_body_in_each_image():
    images = torch.zeros(2, 3, 40, 50)
    images[0, 1, 5:30, 10:45] = 1.0
    boxes = body_boxes(images, [(40, 50), (20, 20)], threshold=0.5, channel=1)
    assert boxes[0].tolist() == [10.0, 5.0, 45.0, 30.0]
    assert boxes[1].tolist() == [0.0, 0.0, 20.0, 20.0]  # nothing above threshold: full image


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
