"""Region proposal network with lesion-sized anchors and a TruncatedRPN-style sampling option.

Built on torchvision's RegionProposalNetwork. With ``sampling="truncated"`` the objectness loss
uses every positive anchor and only the hardest negatives, at most ``negative_ratio`` per
positive (never fewer than ``min_negatives``), instead of a random balanced sample: the easy
background that dominates a CT slice stops diluting the loss, and the confusable background
(vessels, bowel, bone texture) is what the RPN learns to reject.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from fsd.models.detector_config import DetectorConfig


class TruncatedRPN(RegionProposalNetwork):
    """RPN whose objectness loss keeps all positives and the hardest negatives per image."""

    def __init__(self, *args, negative_ratio: float = 3.0, min_negatives: int = 16, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.negative_ratio = negative_ratio
        self.min_negatives = min_negatives

    def compute_loss(
        self,
        objectness: torch.Tensor,
        pred_bbox_deltas: torch.Tensor,
        labels: list[torch.Tensor],
        regression_targets: list[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        objectness = objectness.flatten()
        scores = objectness.detach()
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
        pos_index = torch.cat(positives)
        sampled = torch.cat([pos_index, torch.cat(negatives)])
        all_labels = torch.cat(labels, dim=0)
        all_targets = torch.cat(regression_targets, dim=0)
        box_loss = F.smooth_l1_loss(
            pred_bbox_deltas[pos_index], all_targets[pos_index], beta=1 / 9, reduction="sum"
        ) / max(sampled.numel(), 1)
        objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled], all_labels[sampled])
        return objectness_loss, box_loss


def build_rpn(config: DetectorConfig, in_channels: int) -> RegionProposalNetwork:
    """The RPN the config describes, over the 4 FPN levels."""
    rpn = config.model.rpn
    sizes = config.anchor_sizes_px
    anchor_generator = AnchorGenerator(
        sizes=sizes, aspect_ratios=(tuple(rpn.aspect_ratios),) * len(sizes)
    )
    head = RPNHead(in_channels, anchor_generator.num_anchors_per_location()[0])
    kwargs = {
        "anchor_generator": anchor_generator,
        "head": head,
        "fg_iou_thresh": rpn.fg_iou_thresh,
        "bg_iou_thresh": rpn.bg_iou_thresh,
        "batch_size_per_image": rpn.batch_size_per_image,
        "positive_fraction": rpn.positive_fraction,
        "pre_nms_top_n": {"training": rpn.pre_nms_top_n_train, "testing": rpn.pre_nms_top_n_test},
        "post_nms_top_n": {"training": rpn.post_nms_top_n_train, "testing": rpn.post_nms_top_n_test},
        "nms_thresh": rpn.nms_thresh,
    }
    if rpn.sampling == "truncated":
        return TruncatedRPN(negative_ratio=rpn.negative_ratio, min_negatives=rpn.min_negatives, **kwargs)
    return RegionProposalNetwork(**kwargs)
