"""The names networks are built from, without torch: normalization kinds and the op table's ops.

The config (:mod:`fsd.config`) checks a file's names against these when it loads, so validating
a config needs no torch. The layers behind the names live in :mod:`fsd.nn.norm.factory`
(``make_norm``) and :mod:`fsd.nn.ops` (``OPS``, ``build_op``); both key their builders by these
names, in this order.
"""

from __future__ import annotations

#: every kind ``make_norm`` accepts
NORM_KINDS: tuple[str, ...] = ("bn", "gn", "in", "ln", "bin", "iln", "sn", "ssn", "syncsn", "none")

#: every op of the op table (:data:`fsd.nn.ops.OPS`), in its order
OP_NAMES: tuple[str, ...] = (
    "conv_3x3",
    "conv_5x5",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "ir_k3_e3",
    "ir_k3_e6",
    "ir_k5_e3",
    "ir_k5_e6",
    "skip",
    "zero",
)
#: ops whose output does not come from learned spatial filtering (the search's collapse risk)
PARAMETER_FREE_OPS: frozenset[str] = frozenset({"skip", "zero"})
#: the candidates of a backbone position by default: every op but ``zero`` (a block is never dropped)
DEFAULT_BACKBONE_OPS: tuple[str, ...] = tuple(name for name in OP_NAMES if name != "zero")
#: the candidates of a head-cell edge by default: the cheap ops, ``skip``, and ``zero`` to drop the edge
DEFAULT_HEAD_OPS: tuple[str, ...] = ("conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "ir_k3_e3", "skip", "zero")


def check_norm_kind(kind: str) -> str:
    """``kind`` when ``make_norm`` builds it; ValueError naming the known kinds otherwise."""
    if kind not in NORM_KINDS:
        raise ValueError(f"unknown normalization kind {kind!r}; valid kinds: {', '.join(NORM_KINDS)}")
    return kind


def check_op_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` when every one is an op of the table; ValueError naming the unknown ones and the known ones."""
    unknown = [name for name in names if name not in OP_NAMES]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise ValueError(f"unknown op {listed}; the op table (fsd/nn/ops.py) has {', '.join(OP_NAMES)}")
    if not names:
        raise ValueError("at least one op is needed")
    return names
