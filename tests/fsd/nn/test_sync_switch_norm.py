"""SyncSwitchNorm2d: two gloo processes behave like one SwitchNorm2d over the concatenated batch."""

import copy
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from fsd.nn import SwitchNorm2d, SyncSwitchNorm2d, convert_sync_switchnorm, revert_sync_switchnorm

CHANNELS = 3
BATCH_PER_RANK = (1, 3)  # ranks may hold different numbers of samples
STEPS = 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_case():
    generator = torch.Generator().manual_seed(0)
    reference = SwitchNorm2d(CHANNELS, momentum=0.8).double()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    inputs = [
        [
            torch.randn(n, CHANNELS, 3, 4, generator=generator, dtype=torch.float64) * 2 + 1
            for n in BATCH_PER_RANK
        ]
        for _ in range(STEPS)
    ]
    output_grads = [[torch.randn_like(x, dtype=torch.float64) for x in step] for step in inputs]
    return reference, inputs, output_grads


def worker(rank: int, port: int, case_path: str, result_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        case = torch.load(case_path)
        layer = SyncSwitchNorm2d(CHANNELS, momentum=0.8).double()
        layer.load_state_dict(case["state"], strict=True)
        results = {"outputs": [], "input_grads": []}
        for step in range(STEPS):
            x = case["inputs"][step][rank].clone().requires_grad_(True)
            out = layer(x)
            (out * case["output_grads"][step][rank]).sum().backward()
            results["outputs"].append(out.detach())
            results["input_grads"].append(x.grad)
        results["param_grads"] = {name: p.grad for name, p in layer.named_parameters()}
        results["running_mean"] = layer.running_mean.clone()
        results["running_var"] = layer.running_var.clone()
        torch.save(results, f"{result_dir}/rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_layer_on_the_concatenated_batch(tmp_path):
    reference, inputs, output_grads = make_case()
    case_path = tmp_path / "case.pt"
    torch.save({"state": reference.state_dict(), "inputs": inputs, "output_grads": output_grads}, case_path)
    mp.spawn(worker, args=(free_port(), str(case_path), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    for step in range(STEPS):
        x = torch.cat(inputs[step]).requires_grad_(True)
        out = reference(x)
        (out * torch.cat(output_grads[step])).sum().backward()
        expected_outputs = out.detach().split(BATCH_PER_RANK)
        expected_grads = x.grad.split(BATCH_PER_RANK)
        for rank in range(2):
            torch.testing.assert_close(ranks[rank]["outputs"][step], expected_outputs[rank])
            torch.testing.assert_close(ranks[rank]["input_grads"][step], expected_grads[rank])
    for name, parameter in reference.named_parameters():
        # DDP sums (then averages) per-rank parameter gradients; the sum is the global gradient
        torch.testing.assert_close(
            ranks[0]["param_grads"][name] + ranks[1]["param_grads"][name], parameter.grad
        )
    for rank in range(2):
        torch.testing.assert_close(ranks[rank]["running_mean"], reference.running_mean)
        torch.testing.assert_close(ranks[rank]["running_var"], reference.running_var)


def test_without_distributed_it_is_switchnorm_and_scripts():
    plain = SwitchNorm2d(4)
    with torch.no_grad():
        plain.mean_weight.copy_(torch.tensor([0.3, -0.2, 1.0]))
    synced = SyncSwitchNorm2d(4)
    synced.load_state_dict(plain.state_dict(), strict=True)
    scripted = torch.jit.script(copy.deepcopy(synced))
    x = torch.randn(2, 4, 3, 3)
    expected = plain(x)
    torch.testing.assert_close(synced(x), expected)
    torch.testing.assert_close(scripted(x), expected)
    torch.testing.assert_close(synced.running_var, plain.running_var)
    torch.testing.assert_close(scripted.running_var, plain.running_var)
    torch.testing.assert_close(scripted.eval()(x), plain.eval()(x))


def test_convert_and_revert_swap_layers_and_keep_their_tensors():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        SwitchNorm2d(4, momentum=0.9, using_bn=False, last_gamma=True),
        nn.Sequential(nn.Conv2d(4, 4, 1), SwitchNorm2d(4)),
    )
    model.eval()
    weight = model[2][1].weight
    x = torch.randn(2, 3, 6, 6)
    before = model(x)

    converted = convert_sync_switchnorm(model)
    assert type(converted[1]) is SyncSwitchNorm2d and type(converted[2][1]) is SyncSwitchNorm2d
    assert converted[1].momentum == 0.9 and not converted[1].using_bn and converted[1].last_gamma
    assert converted[2][1].weight is weight
    assert not converted[2][1].training
    torch.testing.assert_close(converted(x), before)

    reverted = revert_sync_switchnorm(converted)
    assert type(reverted[1]) is SwitchNorm2d and type(reverted[2][1]) is SwitchNorm2d
    assert reverted[2][1].weight is weight
    torch.testing.assert_close(reverted(x), before)
    assert type(convert_sync_switchnorm(SwitchNorm2d(2))) is SyncSwitchNorm2d
