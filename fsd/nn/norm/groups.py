"""Group counts for group-wise normalizers (GN and the GN inside ILN)."""


def group_count(channels: int, max_groups: int) -> int:
    """The largest divisor of ``channels`` that is at most ``max_groups``.

    GN's standard 32 groups (ILN's 16) need the channel count to be divisible; for other widths
    (48 channels -> 24 groups, 3 channels -> 3 groups) this picks the nearest valid count below,
    so every width a searched network proposes gets a group norm.
    """
    if channels < 1:
        raise ValueError(f"the number of channels must be at least 1, got {channels}")
    if max_groups < 1:
        raise ValueError(f"the maximum number of groups must be at least 1, got {max_groups}")
    for groups in range(min(channels, max_groups), 0, -1):
        if channels % groups == 0:
            return groups
    return 1
