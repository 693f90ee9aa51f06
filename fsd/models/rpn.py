"""Region proposal network with lesion-sized anchors, TruncatedRPN-style sampling and batched
proposal filtering.

Built on torchvision's RegionProposalNetwork, with two changes:

- ``sampling="truncated"``: the objectness loss uses every positive anchor and only the hardest
  negatives, at most ``negative_ratio`` per positive (never fewer than ``min_negatives``),
  instead of a random balanced sample: the easy background that dominates a CT slice stops
  diluting the loss, and the confusable background (vessels, bowel, bone texture) is what the
  RPN learns to reject;
- proposals of all images are clipped, filtered and suppressed in one batched NMS call (groups =
  image x pyramid level) instead of a Python loop of per-image NMS calls; the kept proposals are
  the same (NMS never crosses groups), with far fewer kernel launches on a GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import batched_nms

from fsd.models.boxes import clip_boxes_per_image
from fsd.models.detector_config import DetectorConfig


class LesionRPN(RegionProposalNetwork):
    def __init__(self, *args, truncated: bool = False, negative_ratio: float = 3.0, min_negatives: int = 16, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.truncated = truncated
        self.negative_ratio = negative_ratio
        self.min_negatives = min_negatives

    def filter_proposals(
        self,
        proposals: torch.Tensor,
        objectness: torch.Tensor,
        image_shapes: list[tuple[int, int]],
        num_anchors_per_level: list[int],
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        num_images = proposals.shape[0]
        device = proposals.device
        objectness = objectness.detach().reshape(num_images, -1)
        levels = torch.cat(
            [torch.full((n,), index, dtype=torch.int64, device=device) for index, n in enumerate(num_anchors_per_level)]
        )
        levels = levels.reshape(1, -1).expand_as(objectness)
        top_n_idx = self._get_top_n_idx(objectness, num_anchors_per_level)
        batch_idx = torch.arange(num_images, device=device)[:, None]
        scores = torch.sigmoid(objectness[batch_idx, top_n_idx])
        levels = levels[batch_idx, top_n_idx]
        images = batch_idx.expand_as(levels)
        boxes = clip_boxes_per_image(proposals[batch_idx, top_n_idx], images, image_shapes)
        widths = boxes[..., 2] - boxes[..., 0]
        heights = boxes[..., 3] - boxes[..., 1]
        keep = (widths >= self.min_size) & (heights >= self.min_size) & (scores >= self.score_thresh)
        flat_boxes = boxes[keep]
        flat_scores = scores[keep]
        flat_images = images[keep]
        groups = flat_images * len(num_anchors_per_level) + levels[keep]
        kept = batched_nms(flat_boxes, flat_scores, groups, self.nms_thresh)
        kept_images = flat_images[kept]
        final_boxes: list[torch.Tensor] = []
        final_scores: list[torch.Tensor] = []
        for index in range(num_images):
            mine = kept[kept_images == index][: self.post_nms_top_n()]
            final_boxes.append(flat_boxes[mine])
            final_scores.append(flat_scores[mine])
        return final_boxes, final_scores

    def compute_loss(
        self,
        objectness: torch.Tensor,
        pred_bbox_deltas: torch.Tensor,
        labels: list[torch.Tensor],
        regression_targets: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.truncated:
            positives, negatives = self._truncated_sample(objectness, labels)
        else:
            positive_masks, negative_masks = self.fg_bg_sampler(labels)
            positives = torch.where(torch.cat(positive_masks, dim=0))[0]
            negatives = torch.where(torch.cat(negative_masks, dim=0))[0]
        sampled = torch.cat([positives, negatives])
        objectness = objectness.flatten()
        all_labels = torch.cat(labels, dim=0)
        all_targets = torch.cat(regression_targets, dim=0)
        box_loss = F.smooth_l1_loss(
            pred_bbox_deltas[positives], all_targets[positives], beta=1 / 9, reduction="sum"
        ) / max(sampled.numel(), 1)
        objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled], all_labels[sampled])
        return objectness_loss, box_loss

    def _truncated_sample(self, objectness: torch.Tensor, labels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (into the flattened anchors of the batch) of every positive and, per image, of
        the hardest negatives: ``max(min_negatives, negative_ratio * positives)`` of them."""
        scores = objectness.detach().flatten()
        positives: list[torch.Tensor] = []
        negatives: list[torch.Tensor] = []
        offset = 0
        for image_labels in labels:
            count = image_labels.shape[0]
            pos = torch.where(image_labels >= 1)[0]
            neg = torch.where(image_labels == 0)[0]
            wanted = max(self.min_negatives, int(self.negative_ratio * float(pos.numel())))
            wanted = min(wanted, int(neg.numel()))
            hardest = scores[offset + neg].topk(wanted).indices
            positives.append(pos + offset)
            negatives.append(neg[hardest] + offset)
            offset += count
        return torch.cat(positives), torch.cat(negatives)


def build_rpn(config: DetectorConfig, in_channels: int) -> LesionRPN:
    """The RPN the config describes, over the 4 FPN levels."""
    rpn = config.model.rpn
    sizes = config.anchor_sizes_px
    anchor_generator = AnchorGenerator(sizes=sizes, aspect_ratios=(tuple(rpn.aspect_ratios),) * len(sizes))
    head = RPNHead(in_channels, anchor_generator.num_anchors_per_location()[0])
    return LesionRPN(
        anchor_generator=anchor_generator,
        head=head,
        fg_iou_thresh=rpn.fg_iou_thresh,
        bg_iou_thresh=rpn.bg_iou_thresh,
        batch_size_per_image=rpn.batch_size_per_image,
        positive_fraction=rpn.positive_fraction,
        pre_nms_top_n={"training": rpn.pre_nms_top_n_train, "testing": rpn.pre_nms_top_n_test},
        post_nms_top_n={"training": rpn.post_nms_top_n_train, "testing": rpn.post_nms_top_n_test},
        nms_thresh=rpn.nms_thresh,
        truncated=rpn.sampling == "truncated",
        negative_ratio=rpn.negative_ratio,
        min_negatives=rpn.min_negatives,
    )
