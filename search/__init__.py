"""Differentiable architecture search over the FSD backbone and RoI head.

Four separate things, as in DARTS/NNI: the operation table (``fsd.nn.ops``), the mixed op
(:mod:`search.mixed_op`), the genotype (``fsd.models.genotype``) and the derived-network builder
(``fsd.models.build_detector``). This package adds the supernet, the bilevel loop, the cost term,
the derivation with its collapse guard, and the plots.
"""
