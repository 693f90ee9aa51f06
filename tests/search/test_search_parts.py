"""Supernet, mixed op, cost term and derivation with its collapse guard."""

from __future__ import annotations

import pytest
import torch

from fsd.config import FsdConfig, SpaceSection
from fsd.models import DetectorConfig, build_detector
from fsd.models.complexity import count_parameters
from fsd.nn.ops import build_op
from search.derive import derive_genotype
from search.loop import random_genotype
from search.mixed_op import MixedOp
from search.supernet import (
    architecture_parameters,
    backbone_mixed_ops,
    build_supernet,
    expected_parameters_millions,
    head_mixed_ops,
    weight_parameters,
)

OPS = ["conv_3x3", "sep_conv_3x3", "ir_k3_e3", "skip"]


def tiny_space(**overrides) -> SpaceSection:
    data = {
        "stem_channels": 8,
        "stages": [{"width": 8, "blocks": 1}, {"width": 16, "blocks": 2}, {"width": 16, "blocks": 1}, {"width": 24, "blocks": 1}],
        "backbone_ops": OPS,
        "head_ops": ["conv_3x3", "skip", "zero"],
        "head_nodes": 2,
        "head_channels": 8,
    }
    data.update(overrides)
    return SpaceSection.model_validate(data)


def tiny_detector_config() -> DetectorConfig:
    config = FsdConfig.model_validate({"task": "binary", "model": {"fpn_channels": 16, "roi": {"representation": 32, "batch_size_per_image": 16}}})
    return DetectorConfig.from_config(config)


@pytest.mark.parametrize("partial", [1, 4])
@pytest.mark.parametrize("stride, c_in, c_out", [(1, 16, 16), (2, 16, 32)])
def test_mixed_op_is_the_weighted_sum_of_candidates(partial: int, stride: int, c_in: int, c_out: int):
    torch.manual_seed(0)
    mixed = MixedOp(OPS, c_in, c_out, stride, "bn", partial).eval()
    x = torch.randn(2, c_in, 8, 8)
    y = mixed(x)
    assert y.shape == (2, c_out, 8 // stride, 8 // stride)
    if partial == 1:
        expected = sum(w * op(x) for w, op in zip(mixed.weights(), mixed.candidates))
        assert torch.allclose(y, expected, atol=1e-6)
    else:
        assert mixed.partial == 4 and mixed.candidates[0].conv.in_channels == c_in // 4


def test_a_sampled_step_runs_one_candidate_and_still_moves_every_alpha():
    torch.manual_seed(0)
    mixed = MixedOp(OPS, 16, 16, 1, "bn").train()
    calls = [0] * len(OPS)
    for index, op in enumerate(mixed.candidates):
        op.register_forward_hook(lambda module, args, output, index=index: calls.__setitem__(index, calls[index] + 1))
    mixed.draw(torch.Generator().manual_seed(3), tau=1.0)
    x = torch.randn(2, 16, 8, 8)
    y = mixed(x)
    assert sum(calls) == 1, "one candidate runs"
    chosen = calls.index(1)
    assert chosen == int(torch.argmax(mixed.alpha.detach() + mixed.gumbel))
    assert torch.allclose(y, mixed.candidates[chosen](x), atol=1e-6), "the hard weight is 1 in value"
    y.square().mean().backward()
    assert mixed.alpha.grad is not None and bool((mixed.alpha.grad != 0).all()), "straight-through gradient reaches every alpha"
    mixed.draw(None, 1.0)
    assert mixed.gumbel is None and torch.allclose(mixed(x), sum(w * op(x) for w, op in zip(mixed.weights(), mixed.candidates)))


def test_paths_follow_the_alphas_and_the_generator():
    mixed = MixedOp(OPS, 8, 8, 1, "bn")
    with torch.no_grad():
        mixed.alpha.copy_(torch.tensor([0.0, 0.0, 8.0, 0.0]))
    picks = []
    for seed in range(40):
        mixed.draw(torch.Generator().manual_seed(seed), tau=1.0)
        picks.append(int(torch.argmax(mixed.alpha.detach() + mixed.gumbel)))
    assert picks.count(2) >= 36, "a strong alpha is drawn almost always"
    again = []
    for seed in range(40):
        mixed.draw(torch.Generator().manual_seed(seed), tau=1.0)
        again.append(int(torch.argmax(mixed.alpha.detach() + mixed.gumbel)))
    assert picks == again


def test_expected_parameters_follow_the_alphas_and_are_differentiable():
    mixed = MixedOp(OPS, 16, 16, 1, "bn")
    full = [count_parameters(build_op(name, 16, 16, 1, "bn")) for name in OPS]
    with torch.no_grad():
        mixed.alpha.copy_(torch.tensor([10.0, -10.0, -10.0, -10.0]))
    assert float(mixed.expected_parameters().detach()) == pytest.approx(full[0], rel=1e-3)
    mixed.expected_parameters().backward()
    assert mixed.alpha.grad is not None and float(mixed.alpha.grad.abs().sum()) > 0


def test_supernet_trains_weights_and_alphas():
    torch.manual_seed(0)
    space = tiny_space()
    model = build_supernet(space, tiny_detector_config(), partial_channels=2)
    assert len(backbone_mixed_ops(model)) == 5 and len(head_mixed_ops(model)) == 3
    alphas = architecture_parameters(model)
    assert len(alphas) == 8
    assert not any(p is a for _, p in weight_parameters(model) for a in alphas)
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 56)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 30.0, 30.0]]), "labels": torch.tensor([1])}] * 2
    losses, _ = model(images, targets)
    (sum(losses.values()) + 0.1 * expected_parameters_millions(model)).backward()
    assert all(a.grad is not None and float(a.grad.abs().sum()) > 0 for a in alphas)


def _one_hot(names: list[str], winner: str, strength: float = 0.9) -> list[float]:
    rest = (1 - strength) / (len(names) - 1)
    return [strength if n == winner else rest for n in names]


def test_derivation_takes_the_strongest_op_and_caps_parameter_free_ops():
    space = tiny_space()
    backbone = [_one_hot(OPS, "skip", 0.5 + 0.05 * i) for i in range(5)]  # conv_3x3 second everywhere
    head = [_one_hot(["conv_3x3", "skip", "zero"], "skip")] * 3
    genotype = derive_genotype(space, backbone, head, max_parameter_free=1)
    ops = genotype.backbone_ops
    # positions 0, 1, 3, 4 open a stage (strided): never skip; of the rest (position 2) the cap keeps 1
    assert [op == "skip" for op in ops] == [False, False, True, False, False]
    assert all(op == "conv_3x3" for i, op in enumerate(ops) if i != 2)
    assert [s.width for s in genotype.stages] == [8, 16, 16, 24]


def test_derivation_drops_head_edges_to_zero_but_keeps_every_node_fed():
    space = tiny_space()
    backbone = [_one_hot(OPS, "conv_3x3")] * 5
    head_names = ["conv_3x3", "skip", "zero"]
    head = [_one_hot(head_names, "zero"), _one_hot(head_names, "zero"), _one_hot(head_names, "conv_3x3")]
    genotype = derive_genotype(space, backbone, head, max_parameter_free=2)
    assert [e.op for e in genotype.head_edges] == ["conv_3x3", "zero", "conv_3x3"]


def test_derived_head_keeps_a_parametric_op_per_node():
    space = tiny_space()
    backbone = [_one_hot(OPS, "conv_3x3")] * 5
    # weights over (conv_3x3, skip, zero): every edge prefers skip or zero, yet each node gets a conv
    head = [[0.2, 0.7, 0.1], [0.05, 0.9, 0.05], [0.3, 0.1, 0.6]]
    genotype = derive_genotype(space, backbone, head, max_parameter_free=2)
    ops = [e.op for e in genotype.head_edges]
    assert ops[0] == "conv_3x3"  # node 1's only edge
    assert "conv_3x3" in ops[1:]  # node 2: the edge whose conv weight is strongest (0.3 on edge 1->2)
    assert ops[2] == "conv_3x3" and ops[1] == "skip"


def test_random_and_derived_genotypes_build():
    config = FsdConfig.model_validate({"search": {"space": tiny_space().model_dump()}})
    for seed in range(3):
        genotype = random_genotype(config, seed)
        assert sum(op == "skip" for op in genotype.backbone_ops) <= config.search.max_parameter_free_backbone
        model = build_detector(genotype, tiny_detector_config())
        assert sum(p.numel() for p in model.parameters()) > 0


def test_evolution_keeps_the_best_scored_candidate_within_the_budget():
    from search.selection import Evolution, genotype_choices, random_parameter_quantile

    space = tiny_space()
    config = tiny_detector_config()
    budget = random_parameter_quantile(space, config, max_parameter_free=1, samples=16)
    uniform = [[1.0] * len(space.backbone_ops)] * 5 + [[1.0] * len(space.head_ops)] * 3
    evolution = Evolution(space, config, uniform, max_parameter_free=1, budget=budget, seed=0)
    derived = random_genotype(FsdConfig.model_validate({"search": {"space": space.model_dump(), "max_parameter_free_backbone": 1}}), 3)
    # a score the selection can only learn by evaluating: prefers conv_3x3 in the backbone
    conv = space.backbone_ops.index("conv_3x3")
    chosen = evolution.run(derived, population=6, generations=2, mutation=0.5, score=lambda c: sum(x == conv for x in c.choices[:5]) / 5)
    assert chosen.parameters <= budget
    scored = [evolution.candidates[c] for c in evolution.scores]
    assert all(c.parameters <= budget for c in scored), "over-budget candidates are never evaluated"
    assert evolution.scores[chosen.choices] == max(evolution.scores.values())
    assert len(evolution.scores) > 6, "generations add mutated candidates"
    assert genotype_choices(chosen.genotype, space) == chosen.choices
    strided = [0, 1, 3, 4]  # first block of each stage: never a skip (derivation guard)
    assert all(space.backbone_ops[chosen.choices[i]] != "skip" for i in strided)


def test_a_fixed_path_runs_only_the_chosen_candidate():
    from search.selection import fix_path

    mixed = MixedOp(OPS, 8, 8, 1, "bn").eval()
    x = torch.randn(1, 8, 6, 6)
    fix_path([mixed], (2,))
    assert torch.equal(mixed(x), mixed.candidates[2](x))
    fix_path([mixed], None)
    assert mixed.fixed is None
