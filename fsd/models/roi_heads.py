"""Second stage: RoIAlign over the pyramid, the (searched) box head, the predictor, losses and
post-processing.

Lesion detection is class-agnostic first (DeepLesion's metric) and typed second, so the head
regresses one box per RoI and classifies it into background + K types. A detection's ``score`` is
1 - P(background), its ``labels`` the most likely type and ``type_scores`` the type probabilities
given that it is a lesion. NMS is class-agnostic.

For the region-aware graph the heads also give the predictor each image's context RoIs: the
top ``context_size`` RPN proposals, in training as at test time (at test time they are the
leading RoIs themselves; in training their features come from the same box-head call as the
sampled RoIs').
With the auxiliary heads (the multi-type task, graph on or off) a slice-position head predicts
the key slice's position along the body from the two coarsest pyramid levels, trained on the
targets' ``slice_z`` (DeepLesion's body-anchored normalised z) and given to the predictor
(detached by default, so the typing loss does not pull the position estimate; docs/benchmarks.md
has the measured choice); each detection dict then also carries ``slice_position`` (1,). The
auxiliary classifier's loss joins too. For K > 1 types the classification loss is the
cross-entropy split into a detection and a typing factor, the typing one class-weighted
(:meth:`LesionRoIHeads.classification_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import _utils as det_utils
from torchvision.ops import MultiScaleRoIAlign, batched_nms, box_iou

from fsd.models.boxes import clip_boxes_per_image


class LesionRoIHeads(nn.Module):
    __annotations__ = {
        "box_coder": det_utils.BoxCoder,
        "proposal_matcher": det_utils.Matcher,
        "fg_bg_sampler": det_utils.BalancedPositiveNegativeSampler,
    }

    def __init__(
        self,
        box_roi_pool: MultiScaleRoIAlign,
        box_head: nn.Module,
        box_predictor: nn.Module,
        num_classes: int,
        fg_iou_thresh: float,
        bg_iou_thresh: float,
        batch_size_per_image: int,
        positive_fraction: float,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        context_size: int,
        slice_position: nn.Module,
        auxiliary_loss_weight: float = 0.5,
        slice_position_loss_weight: float = 0.5,
        detach_slice_position: bool = True,
    ) -> None:
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.num_classes = num_classes
        self.box_coder = det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.proposal_matcher = det_utils.Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.fg_bg_sampler = det_utils.BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.context_size = context_size
        self.slice_position = slice_position
        self.auxiliary_loss_weight = auxiliary_loss_weight
        self.slice_position_loss_weight = slice_position_loss_weight
        self.detach_slice_position = detach_slice_position
        #: per-type weights of the typing term of the classification loss (multi-type task; 1 = plain
        #: cross-entropy), set from the training set's type counts by :meth:`set_type_weights`
        self.register_buffer("type_weights", torch.ones(num_classes))

    @torch.jit.unused
    def set_type_weights(self, weights: torch.Tensor) -> None:
        """Weights (K,) of each type's term in the typing loss (see :meth:`classification_loss`)."""
        if weights.shape != self.type_weights.shape:
            raise ValueError(f"type weights must have shape {tuple(self.type_weights.shape)}, got {tuple(weights.shape)}")
        self.type_weights.copy_(weights.to(self.type_weights))

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over background + K types, split into its two factors for K > 1.

        log P(type t) = log P(lesion) + log P(t | lesion), so the per-RoI cross-entropy is a
        detection term (-log P(background) or -log P(lesion)) plus, for the positive RoIs, a
        typing term -log P(t | lesion), which is weighted by ``type_weights[t]`` (rare types count
        more; all ones give plain cross-entropy). Both are summed over the sampled RoIs and
        divided by their count, as cross-entropy's mean is."""
        if self.num_classes == 1:
            return F.cross_entropy(logits, labels)
        log_probabilities = F.log_softmax(logits.float(), dim=1)
        lesion = torch.logsumexp(log_probabilities[:, 1:], dim=1)
        positive = labels > 0
        detection = torch.where(positive, -lesion, -log_probabilities[:, 0])
        type_index = (labels - 1).clamp(min=0)
        typing = -(log_probabilities[:, 1:].gather(1, type_index[:, None]).squeeze(1) - lesion)
        weights = self.type_weights[type_index] * positive.float()
        return (detection.sum() + (weights * typing).sum()) / max(labels.numel(), 1)

    def select_training_samples(
        self, proposals: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Add ground truth to the proposals, match, sample; returns proposals, labels, box targets."""
        sampled_proposals: list[torch.Tensor] = []
        sampled_labels: list[torch.Tensor] = []
        regression: list[torch.Tensor] = []
        matched_labels: list[torch.Tensor] = []
        matched_boxes: list[torch.Tensor] = []
        all_proposals: list[torch.Tensor] = []
        for image_proposals, target in zip(proposals, targets):
            gt_boxes = target["boxes"].to(image_proposals.dtype)
            gt_labels = target["labels"]
            image_proposals = torch.cat([image_proposals, gt_boxes])
            if gt_boxes.numel() == 0:
                labels = torch.zeros((image_proposals.shape[0],), dtype=torch.int64, device=image_proposals.device)
                boxes = torch.zeros_like(image_proposals)
            else:
                matches = self.proposal_matcher(box_iou(gt_boxes, image_proposals))
                boxes = gt_boxes[matches.clamp(min=0)]
                labels = gt_labels[matches.clamp(min=0)].to(torch.int64)
                labels[matches == self.proposal_matcher.BELOW_LOW_THRESHOLD] = 0
                labels[matches == self.proposal_matcher.BETWEEN_THRESHOLDS] = -1
            all_proposals.append(image_proposals)
            matched_labels.append(labels)
            matched_boxes.append(boxes)
        positives, negatives = self.fg_bg_sampler(matched_labels)
        for index in range(len(all_proposals)):
            keep = torch.where(positives[index] | negatives[index])[0]
            sampled_proposals.append(all_proposals[index][keep])
            sampled_labels.append(matched_labels[index][keep])
            regression.append(self.box_coder.encode_single(matched_boxes[index][keep], all_proposals[index][keep]))
        return sampled_proposals, sampled_labels, regression

    def losses(
        self,
        class_logits: torch.Tensor,
        box_deltas: torch.Tensor,
        auxiliary_logits: torch.Tensor,
        labels: list[torch.Tensor],
        regression_targets: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        all_labels = torch.cat(labels, dim=0)
        all_targets = torch.cat(regression_targets, dim=0)
        losses: dict[str, torch.Tensor] = {"loss_classifier": self.classification_loss(class_logits, all_labels)}
        positive = torch.where(all_labels > 0)[0]
        losses["loss_box_reg"] = F.smooth_l1_loss(
            box_deltas[positive], all_targets[positive], beta=1 / 9, reduction="sum"
        ) / max(all_labels.numel(), 1)
        if auxiliary_logits.numel() > 0:
            losses["loss_classifier_base"] = self.auxiliary_loss_weight * self.classification_loss(auxiliary_logits, all_labels)
        return losses

    def slice_position_loss(self, predicted: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """Smooth L1 between the predicted and the annotated slice position, over the images that have one."""
        values: list[torch.Tensor] = []
        for index, target in enumerate(targets):
            if "slice_z" in target:
                values.append(F.smooth_l1_loss(predicted[index], target["slice_z"].reshape(()).to(predicted.dtype), beta=0.05))
        if len(values) == 0:
            return predicted.sum() * 0.0
        return self.slice_position_loss_weight * torch.stack(values).mean()

    def _leading_rows(self, boxes: list[torch.Tensor], count: int, device: torch.device) -> torch.Tensor:
        """Row indices of each image's first ``count`` boxes in the concatenation of ``boxes``."""
        rows: list[torch.Tensor] = []
        start = 0
        for image_boxes in boxes:
            rows.append(torch.arange(start, start + min(count, image_boxes.shape[0]), device=device))
            start += image_boxes.shape[0]
        return torch.cat(rows)

    def _features_with_context(
        self,
        features: dict[str, torch.Tensor],
        rois: list[torch.Tensor],
        context: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Box-head features of the RoIs and of the context RoIs from one box-head call."""
        joined = [torch.cat([r, c]) for r, c in zip(rois, context)]
        head = self.box_head(self.box_roi_pool(features, joined, image_sizes))
        roi_rows: list[torch.Tensor] = []
        context_rows: list[torch.Tensor] = []
        start = 0
        for r, c in zip(rois, context):
            roi_rows.append(torch.arange(start, start + r.shape[0], device=head.device))
            context_rows.append(torch.arange(start + r.shape[0], start + r.shape[0] + c.shape[0], device=head.device))
            start += r.shape[0] + c.shape[0]
        return head[torch.cat(roi_rows)], head[torch.cat(context_rows)]

    def postprocess(
        self,
        class_logits: torch.Tensor,
        box_deltas: torch.Tensor,
        proposals: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, torch.Tensor]]:
        """Score, decode, clip, filter and suppress every image's boxes in one batched pass
        (NMS grouped by image), then keep each image's best ``detections_per_img``."""
        device = class_logits.device
        counts = [p.shape[0] for p in proposals]
        image_index = torch.cat(
            [torch.full((count,), index, dtype=torch.int64, device=device) for index, count in enumerate(counts)]
        )
        boxes = self.box_coder.decode_single(box_deltas, torch.cat(proposals, dim=0))
        boxes = clip_boxes_per_image(boxes, image_index, image_sizes)
        probabilities = torch.softmax(class_logits.float(), dim=-1)
        scores = 1.0 - probabilities[:, 0]
        type_scores = probabilities[:, 1:] / scores.clamp(min=1e-6)[:, None]
        labels = type_scores.argmax(dim=1) + 1
        keep = (scores > self.score_thresh) & ((boxes[:, 2] - boxes[:, 0]) >= 1e-2) & ((boxes[:, 3] - boxes[:, 1]) >= 1e-2)
        boxes, scores, labels, type_scores, image_index = boxes[keep], scores[keep], labels[keep], type_scores[keep], image_index[keep]
        kept = batched_nms(boxes, scores, image_index, self.nms_thresh)
        kept_images = image_index[kept]
        results: list[dict[str, torch.Tensor]] = []
        for index in range(len(counts)):
            mine = kept[kept_images == index][: self.detections_per_img]
            results.append({"boxes": boxes[mine], "scores": scores[mine], "labels": labels[mine], "type_scores": type_scores[mine]})
        return results

    def forward(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        bodies: torch.Tensor,
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        labels: list[torch.Tensor] = []
        regression_targets: list[torch.Tensor] = []
        context = [p[: self.context_size] for p in proposals]
        rois = proposals
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            rois, labels, regression_targets = self.select_training_samples(proposals, targets)
        if self.training and self.box_predictor.uses_context:
            box_features, context_features = self._features_with_context(features, rois, context, image_sizes)
        else:
            box_features = self.box_head(self.box_roi_pool(features, rois, image_sizes))
            context_features = box_features[self._leading_rows(rois, self.context_size, box_features.device)]
        slice_z = bodies.new_zeros((bodies.shape[0],))
        if self.box_predictor.auxiliary:
            slice_z = self.slice_position(features["p4"], features["p5"])  # a SlicePositionHead whenever auxiliary
        given_z = slice_z.detach() if self.detach_slice_position else slice_z
        class_logits, box_deltas, auxiliary_logits = self.box_predictor(
            box_features, rois, context_features, context, bodies, given_z
        )
        if self.training:
            assert targets is not None
            losses = self.losses(class_logits, box_deltas, auxiliary_logits, labels, regression_targets)
            if self.box_predictor.auxiliary:
                losses["loss_slice_position"] = self.slice_position_loss(slice_z, targets)
            return [], losses
        detections = self.postprocess(class_logits, box_deltas, rois, image_sizes)
        if self.box_predictor.auxiliary:
            for index, detection in enumerate(detections):
                detection["slice_position"] = slice_z[index : index + 1].float()
        return detections, {}
