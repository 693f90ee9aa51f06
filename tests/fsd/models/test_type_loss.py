"""The multi-type classification loss: cross-entropy split into a detection and a weighted typing factor."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from model_fixtures import tiny_config, tiny_genotype

from fsd.models import build_detector


def test_the_classification_loss_is_cross_entropy_split_into_detection_and_typing():
    heads = build_detector(tiny_genotype(), tiny_config()).roi_heads
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 9, generator=generator)
    labels = torch.randint(0, 9, (40,), generator=generator)
    assert float(heads.classification_loss(logits, labels)) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)
    # weighting type 3 twice adds exactly its typing terms once more, leaves detection alone
    heads.set_type_weights(torch.tensor([1.0, 1, 2, 1, 1, 1, 1, 1]))
    log_p = F.log_softmax(logits, dim=1)
    lesion = torch.logsumexp(log_p[:, 1:], dim=1)
    third = labels == 3
    extra = -(log_p[third, 3] - lesion[third]).sum() / len(labels)
    assert float(heads.classification_loss(logits, labels)) == pytest.approx(float(F.cross_entropy(logits, labels) + extra), rel=1e-5)
    with pytest.raises(ValueError, match="shape"):
        heads.set_type_weights(torch.ones(3))
