"""Builders: the only places a detector is assembled.

- :func:`build_detector` makes the derived FSD network from a genotype;
- :func:`build_baseline` makes a general-purpose ResNet-FPN Faster R-CNN from the same parts;
- :func:`build_from_architecture` rebuilds either from the ``architecture`` record a checkpoint
  or model card stores (``{"kind": "fsd", "genotype": {...}}`` or ``{"kind": "resnet50_fpn"}``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.ops import MultiScaleRoIAlign

from fsd.errors import FsdError
from fsd.models.backbone import derived_backbone
from fsd.models.baselines import BASELINES, ResNetBody, baseline_box_head
from fsd.models.detector import LesionDetector
from fsd.models.detector_config import DetectorConfig
from fsd.models.genotype import Genotype, genotype_from_dict
from fsd.models.graph import NoSlicePosition, SlicePositionHead
from fsd.models.head_cell import derived_head
from fsd.models.neck import LEVEL_NAMES, FeaturePyramid
from fsd.models.predictor import BoxPredictor, GraphBoxPredictor
from fsd.models.roi_heads import LesionRoIHeads
from fsd.models.rpn import build_rpn
from fsd.models.transform import BatchImages

BASELINE_FPN_CHANNELS = 256
#: RoIs of this side length (px) pool from P4; halving it moves one level down (P2 floor)
ROI_CANONICAL_SCALE = 56


def _roi_pool(config: DetectorConfig) -> MultiScaleRoIAlign:
    roi = config.model.roi
    return MultiScaleRoIAlign(
        featmap_names=list(LEVEL_NAMES),
        output_size=roi.pool_size,
        sampling_ratio=roi.sampling_ratio,
        canonical_scale=ROI_CANONICAL_SCALE,
        canonical_level=4,
    )


def assemble_detector(
    config: DetectorConfig,
    backbone: nn.Module,
    neck: FeaturePyramid,
    box_head: nn.Module,
    head_dim: int,
    type_prior: torch.Tensor | None = None,
) -> LesionDetector:
    """Wire the given parts with the config's RPN, RoI heads and predictor (the region-aware
    graph predictor when ``model.graph.enabled``, its type adjacency from ``type_prior``)."""
    model = config.model
    roi = model.roi
    #: the multi-type task trains the auxiliary heads, with the graph on or off
    auxiliary = config.num_classes > 1
    if model.graph.enabled:
        predictor: nn.Module = GraphBoxPredictor(
            head_dim,
            config.num_classes,
            model.graph.hidden,
            type_prior=type_prior,
            prior_weight=model.graph.prior_weight,
            position=model.graph.position,
        )
    else:
        predictor = BoxPredictor(head_dim, config.num_classes, auxiliary=auxiliary)
    slice_position: nn.Module = (
        SlicePositionHead(neck.out_channels, model.graph.hidden) if auxiliary or model.graph.enabled else NoSlicePosition()
    )
    roi_heads = LesionRoIHeads(
        box_roi_pool=_roi_pool(config),
        box_head=box_head,
        box_predictor=predictor,
        num_classes=config.num_classes,
        fg_iou_thresh=roi.fg_iou_thresh,
        bg_iou_thresh=roi.bg_iou_thresh,
        batch_size_per_image=roi.batch_size_per_image,
        positive_fraction=roi.positive_fraction,
        score_thresh=roi.score_thresh,
        nms_thresh=roi.nms_thresh,
        detections_per_img=roi.detections_per_img,
        context_size=model.graph.context_size,
        slice_position=slice_position,
        detach_slice_position=model.graph.detach_position,
    )
    transform = BatchImages(
        config.in_channels,
        config.size_divisible,
        config.image_mean,
        config.image_std,
        body_threshold=config.body_threshold,
        find_bodies=model.graph.enabled,
        pixel_spacing_mm=config.pixel_spacing_mm,
    )
    return LesionDetector(transform, backbone, neck, build_rpn(config, neck.out_channels), roi_heads)


def build_detector(genotype: Genotype, config: DetectorConfig, type_prior: torch.Tensor | None = None) -> LesionDetector:
    """The derived FSD network a genotype names, with the config's normalizer and heads."""
    norm = config.model.norm
    backbone = derived_backbone(genotype, config.in_channels, norm)
    neck = FeaturePyramid(backbone.out_channels, config.model.fpn_channels, norm)
    head = derived_head(genotype, neck.out_channels, config.model.roi.pool_size, config.model.roi.representation, norm)
    return assemble_detector(config, backbone, neck, head, head.out_channels, type_prior)


def build_baseline(name: str, config: DetectorConfig, type_prior: torch.Tensor | None = None) -> LesionDetector:
    """A general-purpose Faster R-CNN (``resnet50_fpn`` or ``resnet18_fpn``) from the same parts."""
    if name not in BASELINES:
        raise FsdError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    norm = config.model.norm
    body = ResNetBody(name, config.in_channels, norm)
    neck = FeaturePyramid(body.out_channels, BASELINE_FPN_CHANNELS, norm)
    head = baseline_box_head(BASELINE_FPN_CHANNELS, config.model.roi.pool_size)
    return assemble_detector(config, body, neck, head, head.fc7.out_features, type_prior)


def architecture_record(genotype: Genotype | None = None, baseline: str | None = None) -> dict[str, Any]:
    """What a checkpoint stores to rebuild its network."""
    if (genotype is None) == (baseline is None):
        raise ValueError("give exactly one of genotype or baseline")
    if genotype is not None:
        return {"kind": "fsd", "genotype": genotype.to_dict()}
    return {"kind": baseline}


def build_from_architecture(
    architecture: dict[str, Any], config: DetectorConfig, type_prior: torch.Tensor | None = None
) -> LesionDetector:
    """The network an architecture record names (``type_prior``: see :func:`assemble_detector`)."""
    kind = architecture.get("kind")
    if kind == "fsd":
        return build_detector(genotype_from_dict(architecture["genotype"]), config, type_prior)
    if kind in BASELINES:
        return build_baseline(str(kind), config, type_prior)
    raise FsdError(f"unknown architecture kind {kind!r}")
