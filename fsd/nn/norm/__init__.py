"""The normalization family: SN, synchronized SN, sparse SN, BIN, ILN, and torch's BN/GN/IN/LN.

``make_norm(kind, channels)`` is the single entry point the networks use; ``NORM_KINDS`` lists
the kinds. ``norm_parameter_groups`` builds optimizer groups without weight decay on norm
parameters; ``mixing_weights`` reports what each switchable layer has learned.
"""

from fsd.nn.norm.factory import GN_MAX_GROUPS, NORM_KINDS, check_norm_kind, make_norm
from fsd.nn.norm.groups import group_count
from fsd.nn.norm.importance import mixing_weights
from fsd.nn.norm.mixtures import BatchInstanceNorm2d, InstanceLayerNorm2d, clip_batch_instance_gates
from fsd.nn.norm.param_groups import is_norm_layer, norm_parameter_groups
from fsd.nn.norm.sparse_switchable import SparseSwitchNorm2d, update_sparse_radius
from fsd.nn.norm.sparsestmax import sparsemax, sparsestmax
from fsd.nn.norm.switchable import NORMALIZER_NAMES, SwitchNorm2d
from fsd.nn.norm.sync_switchable import SyncSwitchNorm2d, convert_sync_switchnorm, revert_sync_switchnorm

__all__ = [
    "GN_MAX_GROUPS",
    "NORMALIZER_NAMES",
    "NORM_KINDS",
    "check_norm_kind",
    "BatchInstanceNorm2d",
    "InstanceLayerNorm2d",
    "SparseSwitchNorm2d",
    "SwitchNorm2d",
    "SyncSwitchNorm2d",
    "clip_batch_instance_gates",
    "convert_sync_switchnorm",
    "group_count",
    "is_norm_layer",
    "make_norm",
    "mixing_weights",
    "norm_parameter_groups",
    "revert_sync_switchnorm",
    "sparsemax",
    "sparsestmax",
    "update_sparse_radius",
]
