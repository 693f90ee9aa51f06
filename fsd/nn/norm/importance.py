"""The learned importance of IN, LN and BN in every switchable layer, for plots and logs."""

import torch
from torch import Tensor, nn

from fsd.nn.norm.switchable import SwitchNorm2d


def mixing_weights(model: nn.Module) -> dict[str, Tensor]:
    """Layer name -> importance weights of every SN-like layer (SN, synchronized SN, sparse SN).

    Each value is a detached CPU float tensor of shape (2, K): row 0 weighs the means, row 1 the
    variances; columns follow ``fsd.nn.NORMALIZER_NAMES`` (IN, LN, BN), K = 2 for SN without BN. The
    weights are the layer's softmax, or its SparsestMax at the current radius (one-hot once
    frozen).
    """
    weights: dict[str, Tensor] = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, SwitchNorm2d):
                mean_weights, var_weights = module.importance_weights()
                weights[name] = torch.stack([mean_weights, var_weights]).detach().float().cpu()
    return weights
