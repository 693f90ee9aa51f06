"""The batched proposal filtering and detection post-processing equal the per-image reference."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import tiny_config, tiny_genotype
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import boxes as box_ops

from fsd.models import build_detector


def _random_proposals(generator: torch.Generator, images: int, per_image: int, size: int) -> torch.Tensor:
    xy = torch.rand(images, per_image, 2, generator=generator) * size * 1.1 - size * 0.05
    wh = torch.rand(images, per_image, 2, generator=generator) * size * 0.3
    return torch.cat([xy, xy + wh], dim=-1)


@pytest.mark.parametrize("seed", range(5))
def test_batched_proposal_filter_equals_torchvision_per_image_loop(seed: int):
    model = build_detector(tiny_genotype(), tiny_config()).eval()
    rpn = model.rpn
    generator = torch.Generator().manual_seed(seed)
    levels = [300, 120, 40, 12]
    images = 3
    proposals = _random_proposals(generator, images, sum(levels), 64)
    objectness = torch.randn(images * sum(levels), 1, generator=generator)
    objectness[:20] = objectness[20:40]  # some equal scores
    shapes = [(64, 64), (48, 60), (64, 40)]
    got_boxes, got_scores = rpn.filter_proposals(proposals, objectness, shapes, levels)
    want_boxes, want_scores = RegionProposalNetwork.filter_proposals(rpn, proposals, objectness, shapes, levels)
    for a, b, c, d in zip(got_boxes, want_boxes, got_scores, want_scores):
        assert torch.equal(a, b) and torch.equal(c, d)


def _reference_postprocess(heads, class_logits, box_deltas, proposals, image_sizes):
    counts = [p.shape[0] for p in proposals]
    decoded = heads.box_coder.decode_single(box_deltas, torch.cat(proposals, dim=0))
    probabilities = torch.softmax(class_logits.float(), dim=-1)
    lesion = 1.0 - probabilities[:, 0]
    types = probabilities[:, 1:] / lesion.clamp(min=1e-6)[:, None]
    labels = types.argmax(dim=1) + 1
    out, start = [], 0
    for index, count in enumerate(counts):
        sl = slice(start, start + count)
        start += count
        boxes = box_ops.clip_boxes_to_image(decoded[sl], image_sizes[index])
        s, lab, t = lesion[sl], labels[sl], types[sl]
        keep = torch.where(s > heads.score_thresh)[0]
        boxes, s, lab, t = boxes[keep], s[keep], lab[keep], t[keep]
        keep = box_ops.remove_small_boxes(boxes, 1e-2)
        boxes, s, lab, t = boxes[keep], s[keep], lab[keep], t[keep]
        keep = box_ops.nms(boxes, s, heads.nms_thresh)[: heads.detections_per_img]
        out.append({"boxes": boxes[keep], "scores": s[keep], "labels": lab[keep], "type_scores": t[keep]})
    return out


@pytest.mark.parametrize("seed", range(5))
def test_batched_detection_postprocess_equals_per_image_reference(seed: int):
    model = build_detector(tiny_genotype(), tiny_config()).eval()
    heads = model.roi_heads
    generator = torch.Generator().manual_seed(seed)
    proposals = [_random_proposals(generator, 1, n, 80)[0] for n in (40, 0, 25)]
    total = sum(p.shape[0] for p in proposals)
    class_logits = torch.randn(total, 9, generator=generator) * 3
    box_deltas = torch.randn(total, 4, generator=generator)
    sizes = [(80, 80), (64, 72), (70, 50)]
    got = heads.postprocess(class_logits, box_deltas, proposals, sizes)
    want = _reference_postprocess(heads, class_logits, box_deltas, proposals, sizes)
    for a, b in zip(got, want):
        for key in ("boxes", "scores", "labels", "type_scores"):
            assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_standard_rpn_sampling_equals_torchvision_and_truncated_keeps_hardest_negatives():
    model = build_detector(tiny_genotype(), tiny_config()).train()
    rpn = model.rpn
    generator = torch.Generator().manual_seed(0)
    labels = [torch.randint(-1, 2, (500,), generator=generator).float() for _ in range(2)]
    targets = [torch.randn(500, 4, generator=generator) for _ in range(2)]
    objectness = torch.randn(1000, 1, generator=generator)
    deltas = torch.randn(1000, 4, generator=generator)
    rpn.truncated = False
    torch.manual_seed(7)
    ours = rpn.compute_loss(objectness, deltas, labels, targets)
    torch.manual_seed(7)
    theirs = RegionProposalNetwork.compute_loss(rpn, objectness, deltas, labels, targets)
    assert torch.allclose(ours[0], theirs[0]) and torch.allclose(ours[1], theirs[1])
    rpn.truncated = True
    positives, negatives = rpn._truncated_sample(objectness, labels)
    assert torch.equal(positives, torch.where(torch.cat(labels) >= 1)[0])
    first_image = negatives[negatives < 500]
    wanted = max(rpn.min_negatives, int(rpn.negative_ratio * int((labels[0] >= 1).sum())))
    assert len(first_image) == min(wanted, int((labels[0] == 0).sum()))
    easiest_kept = objectness.flatten()[first_image].min()
    skipped = torch.ones(500, dtype=torch.bool)
    skipped[first_image] = False
    skipped &= labels[0] == 0
    assert bool((objectness.flatten()[:500][skipped] <= easiest_kept).all())
