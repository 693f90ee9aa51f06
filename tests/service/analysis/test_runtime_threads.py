"""Model workers run their own copy of the model: no TorchScript module is called from two
threads at once, and every copy answers exactly like the loaded model."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from fsd.artifacts import InferenceModel
from service.analysis.runtime import PerThreadModule, make_infer, warmup_image


def _in_thread(call):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join()
    return result[0]


def test_each_thread_gets_its_own_module_and_keeps_it(inference_model: InferenceModel):
    modules = PerThreadModule(inference_model.module, torch.device("cpu"))
    mine = modules.get()
    assert mine is inference_model.module and modules.get() is mine
    other = _in_thread(modules.get)
    assert other is not mine and isinstance(other, torch.jit.ScriptModule) and not other.training
    assert modules.threads == 2
    for name, tensor in inference_model.module.state_dict().items():
        assert torch.equal(other.state_dict()[name], tensor), name
        assert other.state_dict()[name].data_ptr() != tensor.data_ptr(), f"{name} is shared"


def test_workers_side_by_side_answer_exactly_like_one(inference_model: InferenceModel):
    image = warmup_image(inference_model.preprocess, 96)
    expected = make_infer(inference_model, torch.device("cpu"))([image])
    infer = make_infer(inference_model, torch.device("cpu"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: infer([image]), range(8)))
    for answer in answers:
        assert answer[0].keys() == expected[0].keys()
        for key, value in expected[0].items():
            assert torch.equal(answer[0][key], value) if isinstance(value, torch.Tensor) else answer[0][key] == value, key
