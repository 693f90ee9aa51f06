"""Neural-network building blocks shared by the detector and the search.

The normalization family lives in ``fsd.nn.norm`` and is re-exported here; the operation table
is ``fsd.nn.ops`` (import it from there: it depends on this package, not the other way round).
"""

from fsd.nn.norm import (
    GN_MAX_GROUPS,
    NORM_KINDS,
    NORMALIZER_NAMES,
    BatchInstanceNorm2d,
    InstanceLayerNorm2d,
    SparseSwitchNorm2d,
    SwitchNorm2d,
    SyncSwitchNorm2d,
    check_norm_kind,
    clip_batch_instance_gates,
    convert_sync_switchnorm,
    group_count,
    is_norm_layer,
    make_norm,
    mixing_weights,
    norm_parameter_groups,
    revert_sync_switchnorm,
    sparsemax,
    sparsestmax,
    update_sparse_radius,
)

__all__ = [
    "GN_MAX_GROUPS",
    "NORMALIZER_NAMES",
    "NORM_KINDS",
    "BatchInstanceNorm2d",
    "InstanceLayerNorm2d",
    "SparseSwitchNorm2d",
    "SwitchNorm2d",
    "SyncSwitchNorm2d",
    "check_norm_kind",
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
