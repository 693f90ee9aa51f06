"""One factory for every normalization layer the networks and the search may use.

Kinds (``NORM_KINDS``):

    bn      nn.BatchNorm2d
    gn      nn.GroupNorm with 32 groups, or the largest divisor of the width below 32
    in      instance norm with a per-channel affine, as nn.GroupNorm(C, C): the same function
            as nn.InstanceNorm2d(C, affine=True), but it accepts 1 x 1 maps in batches of two
            or more, which nn.InstanceNorm2d rejects outright
    ln      layer norm over (C, H, W) per sample with a per-channel affine: nn.GroupNorm(1, C)
    bin     BatchInstanceNorm2d (BN/IN mix with a gate clipped to [0, 1])
    iln     InstanceLayerNorm2d (IN/LN mix with a sigmoid gate, then GN 16 groups, then affine)
    sn      SwitchNorm2d
    ssn     SparseSwitchNorm2d
    syncsn  SyncSwitchNorm2d (SN with BN statistics shared across processes)
    none    nn.Identity

torch's own layers refuse statistics over a single value (BN in training on a batch of one
1 x 1 map; GN and IN on a 1 x 1 map of a batch of one); this package's layers accept them.
"""

from collections.abc import Callable

from torch import nn

from fsd.nn.norm.groups import group_count
from fsd.nn.norm.mixtures import BatchInstanceNorm2d, InstanceLayerNorm2d
from fsd.nn.norm.sparse_switchable import SparseSwitchNorm2d
from fsd.nn.norm.switchable import SwitchNorm2d
from fsd.nn.norm.sync_switchable import SyncSwitchNorm2d
from fsd.nn_names import NORM_KINDS, check_norm_kind  # noqa: F401  (re-exported: the names live without torch)

#: the most groups the "gn" kind uses (the GN paper's default)
GN_MAX_GROUPS = 32

_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "bn": nn.BatchNorm2d,
    "gn": lambda channels: nn.GroupNorm(group_count(channels, GN_MAX_GROUPS), channels),
    "in": lambda channels: nn.GroupNorm(channels, channels),
    "ln": lambda channels: nn.GroupNorm(1, channels),
    "bin": BatchInstanceNorm2d,
    "iln": InstanceLayerNorm2d,
    "sn": SwitchNorm2d,
    "ssn": SparseSwitchNorm2d,
    "syncsn": SyncSwitchNorm2d,
    "none": lambda channels: nn.Identity(),
}


def make_norm(kind: str, channels: int) -> nn.Module:
    """A normalization layer of ``kind`` (one of NORM_KINDS) for ``channels`` channels."""
    check_norm_kind(kind)
    if channels < 1:
        raise ValueError(f"a normalization layer needs at least 1 channel, got {channels}")
    return _BUILDERS[kind](channels)
