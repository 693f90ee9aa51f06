"""Optimizer groups without decay on norm parameters, is_norm_layer and mixing_weights."""

import pytest
import torch
from torch import nn

from fsd.nn import (
    NORM_KINDS,
    SparseSwitchNorm2d,
    SwitchNorm2d,
    is_norm_layer,
    make_norm,
    mixing_weights,
    norm_parameter_groups,
    sparsestmax,
)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, bias=False)
        self.norms = nn.ModuleList([make_norm(kind, 8) for kind in NORM_KINDS])
        self.extra = nn.Sequential(nn.LayerNorm(8), nn.InstanceNorm2d(8, affine=True), nn.BatchNorm1d(8))
        self.head = nn.Linear(8, 2)
        self.shared = self.head  # the same module twice: its parameters must be counted once
        self.frozen = nn.Conv2d(8, 8, 1)
        self.frozen.requires_grad_(False)


def names_by_group(model, groups):
    name_of = {id(p): name for name, p in model.named_parameters()}
    return {group["name"]: {name_of[id(p)] for p in group["params"]} for group in groups}


def test_each_trainable_parameter_lands_in_exactly_one_group():
    model = TinyNet()
    groups = norm_parameter_groups(model, weight_decay=1e-4, mix_lr_scale=0.1)
    ids = [id(p) for group in groups for p in group["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) and set(ids) == trainable
    assert [g["name"] for g in groups] == ["decay", "no_decay", "mixing"]


def test_groups_separate_weights_norm_parameters_and_mixing_weights():
    model = TinyNet()
    by_name = names_by_group(model, norm_parameter_groups(model, weight_decay=1e-4, mix_lr_scale=0.1))
    assert by_name["decay"] == {"stem.weight", "head.weight"}
    index = {kind: i for i, kind in enumerate(NORM_KINDS)}
    for kind in ("bn", "gn", "in", "ln", "bin", "iln", "sn", "ssn", "syncsn"):
        assert f"norms.{index[kind]}.weight" in by_name["no_decay"]
        assert f"norms.{index[kind]}.bias" in by_name["no_decay"]
    assert {"head.bias", "extra.0.weight", "extra.1.weight", "extra.2.bias"} <= by_name["no_decay"]
    expected_mixing = {
        f"norms.{index[k]}.{n}" for k in ("sn", "ssn", "syncsn") for n in ("mean_weight", "var_weight")
    }
    expected_mixing |= {f"norms.{index['bin']}.gate", f"norms.{index['iln']}.gate_logit"}
    assert by_name["mixing"] == expected_mixing


def test_group_options_carry_decay_and_learning_rate_scale():
    groups = {g["name"]: g for g in norm_parameter_groups(TinyNet(), weight_decay=5e-4, mix_lr_scale=0.1)}
    assert (groups["decay"]["weight_decay"], groups["decay"]["lr_scale"]) == (5e-4, 1.0)
    assert (groups["no_decay"]["weight_decay"], groups["no_decay"]["lr_scale"]) == (0.0, 1.0)
    assert (groups["mixing"]["weight_decay"], groups["mixing"]["lr_scale"]) == (0.0, 0.1)


def test_sgd_with_the_groups_decays_only_ordinary_weights():
    model = nn.Sequential(nn.Conv2d(2, 4, 1), SwitchNorm2d(4))
    optimizer = torch.optim.SGD(norm_parameter_groups(model, weight_decay=0.5), lr=0.1)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    after = dict(model.named_parameters())
    torch.testing.assert_close(after["0.weight"].detach(), before["0.weight"] * 0.95)
    for name in ("0.bias", "1.weight", "1.bias", "1.mean_weight", "1.var_weight"):
        assert torch.equal(after[name].detach(), before[name]), name


def test_empty_groups_are_left_out_and_bad_arguments_rejected():
    groups = norm_parameter_groups(nn.Conv2d(1, 1, 1, bias=False), weight_decay=1e-4)
    assert [g["name"] for g in groups] == ["decay"]
    with pytest.raises(ValueError, match="weight_decay"):
        norm_parameter_groups(nn.Conv2d(1, 1, 1), weight_decay=-1.0)
    with pytest.raises(ValueError, match="mix_lr_scale"):
        norm_parameter_groups(nn.Conv2d(1, 1, 1), weight_decay=0.0, mix_lr_scale=0.0)


@pytest.mark.parametrize("kind", [k for k in NORM_KINDS if k != "none"])
def test_every_norm_kind_is_a_norm_layer(kind):
    assert is_norm_layer(make_norm(kind, 4))


def test_other_modules_are_not_norm_layers():
    for module in (nn.Identity(), nn.Conv2d(1, 1, 1), nn.Linear(2, 2), nn.Sequential(nn.BatchNorm2d(2))):
        assert not is_norm_layer(module)
    assert is_norm_layer(nn.SyncBatchNorm(2)) and is_norm_layer(nn.LayerNorm(3))


def test_mixing_weights_report_softmax_and_sparsestmax_importance():
    model = nn.Sequential(
        SwitchNorm2d(2), nn.Sequential(SparseSwitchNorm2d(2)), SwitchNorm2d(2, using_bn=False)
    )
    with torch.no_grad():
        model[0].mean_weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        model[1][0].mean_weight.copy_(torch.tensor([1.0, 1.2, 0.9]))
        model[1][0].var_weight.copy_(torch.tensor([0.0, 0.0, 4.0]))
    model[1][0].set_radius(0.7)
    weights = mixing_weights(model)
    assert list(weights) == ["0", "1.0", "2"]
    torch.testing.assert_close(weights["0"][0], torch.softmax(torch.tensor([1.0, 2.0, 3.0]), 0))
    torch.testing.assert_close(weights["0"][1], torch.full((3,), 1 / 3))
    torch.testing.assert_close(weights["1.0"][0], sparsestmax(torch.tensor([1.0, 1.2, 0.9]), 0.7))
    assert weights["2"].shape == (2, 2)
    assert all(not w.requires_grad and w.device.type == "cpu" for w in weights.values())


def test_mixing_weights_of_a_frozen_layer_are_its_one_hot_choices():
    layer = SparseSwitchNorm2d(2)
    with torch.no_grad():
        layer.mean_weight.copy_(torch.tensor([0.0, 5.0, 0.0]))
        layer.var_weight.copy_(torch.tensor([5.0, 0.0, 0.0]))
    layer(torch.randn(2, 2, 3, 3))
    assert layer.is_frozen()
    with torch.no_grad():
        layer.mean_weight.copy_(torch.tensor([9.0, 0.0, 0.0]))  # logits no longer matter
    weights = mixing_weights(nn.Sequential(layer))["0"]
    torch.testing.assert_close(weights, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
