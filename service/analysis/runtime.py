"""The model at run time: the exported model on its device (:class:`ModelRuntime`), the inference
function the batcher calls, the CPU threads of the model's thread, and the warm-up input.

Inference goes through :func:`fsd.inference.run_detector`, the same call ``fsd predict`` makes.
"""

from __future__ import annotations

import asyncio
import copy
import io
import logging
import os
import threading
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path

import torch

from fsd.artifacts import InferenceModel, load_exported
from fsd.cpu import physical_cores
from fsd.device import resolve_device
from fsd.inference import run_detector
from fsd.preprocess import PreprocessConfig
from service.analysis.batcher import BucketFn, Detection, InferFn, padded_size_bucket

logger = logging.getLogger("fsd.service")


def cpu_threads(settings_threads: int | None, device: torch.device, cores: int | None = None) -> int | None:
    """How many threads the model's CPU operations get: the setting, or on a CPU one fewer than
    the cores (at least 1); None leaves torch's choice (a GPU device without a setting)."""
    if settings_threads is not None:
        return settings_threads
    if device.type != "cpu":
        return None
    return max((cores or os.cpu_count() or 1) - 1, 1)


def model_workers(settings_workers: int | None, device: torch.device, cores: int | None = None) -> int:
    """How many threads run the model: the setting, or on a CPU one per physical core, on a GPU one."""
    if settings_workers is not None:
        return settings_workers
    return max(cores or physical_cores(), 1) if device.type == "cpu" else 1


def worker_threads(settings_threads: int | None, device: torch.device, workers: int, cores: int | None = None) -> int | None:
    """The CPU threads of each model worker: the setting, 1 when several workers share the CPU
    (they run side by side instead of synchronising at every operation), else :func:`cpu_threads`."""
    if settings_threads is None and device.type == "cpu" and workers > 1:
        return 1
    return cpu_threads(settings_threads, device, cores)


def thread_setup(threads: int | None) -> Callable[[], None] | None:
    """What the model's thread runs first: its CPU thread count (None: nothing to set)."""
    if threads is None:
        return None
    return lambda: torch.set_num_threads(threads)


def load_model(model_dir: str, device: torch.device) -> InferenceModel:
    """The exported model on ``device``; raises ArtifactError when ``model_dir`` is not an export."""
    model = load_exported(model_dir, device)
    logger.info("loaded model %s %s (%s) on %s", model.name, model.version, model.task, device)
    return model


def replicate(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """An independent copy of ``module`` (same weights, its own TorchScript executor state)."""
    if isinstance(module, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # torch.jit.save's deprecation notice, once per worker otherwise
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(module, buffer)
        buffer.seek(0)
        return torch.jit.load(buffer, map_location=device).eval()
    return copy.deepcopy(module).eval()


class PerThreadModule:
    """The model module each model worker calls: the loaded one for the first thread that asks,
    an independent copy for every other thread, kept for that thread's life.

    One TorchScript module called from several threads at once shares its graph executor, whose
    profiling and re-specialisation are not safe to run concurrently (a run with two workers on
    one module aborted the process); copies share nothing. Owns the copies (a few MB each)."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self._module = module
        self._device = device
        self._local = threading.local()
        self._lock = threading.Lock()
        self._handed_out = 0

    def get(self) -> torch.nn.Module:
        module: torch.nn.Module | None = getattr(self._local, "module", None)
        if module is None:
            with self._lock:
                module = self._module if self._handed_out == 0 else replicate(self._module, self._device)
                self._handed_out += 1
            self._local.module = module
        return module

    @property
    def threads(self) -> int:
        """How many threads hold a module (the loaded one included)."""
        return self._handed_out


def make_infer(model: InferenceModel, device: torch.device) -> InferFn:
    """One model call on a list of (C, H, W) images, detections back on the CPU; each calling
    thread runs its own module (:class:`PerThreadModule`)."""
    modules = PerThreadModule(model.module, device)

    def infer(images: list[torch.Tensor]) -> list[Detection]:
        return run_detector(modules.get(), images, device, batch_size=max(len(images), 1))

    return infer


def size_bucket(model: InferenceModel) -> BucketFn:
    """Batch only inputs the model pads to the same size (its ``size_divisible`` stride)."""
    return padded_size_bucket(max(model.card.detector_config.size_divisible, 1))


def warmup_image(preprocess: PreprocessConfig, size: int | None = None) -> torch.Tensor:
    """A CT-like input (soft-tissue ellipse with a denser disc in air) of the model's largest size."""
    side = min(size or preprocess.max_size, preprocess.max_size)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
    image = torch.full((side, side), preprocess.window_value(-1000.0))
    image[(xs / 0.85) ** 2 + (ys / 0.7) ** 2 < 1] = preprocess.window_value(40.0)
    image[(xs - 0.2) ** 2 + (ys + 0.1) ** 2 < 0.01] = preprocess.window_value(200.0)
    return image.expand(preprocess.num_slices, side, side).contiguous()


class ModelNotLoadedError(RuntimeError):
    """The model is asked for before start-up loaded it."""


class ModelRuntime:
    """The exported model the service runs and the device it runs on.

    Owns the :class:`~fsd.artifacts.InferenceModel` (loaded once, by :meth:`load` at start-up, or
    given already loaded) and its device. :meth:`infer` and :meth:`bucket` are what the batcher
    calls on its model workers (threads, each with its own copy of the module).
    """

    def __init__(self, model_dir: Path, device: str, model: InferenceModel | None = None) -> None:
        self._model_dir = Path(model_dir)
        self._model = model
        self._infer: InferFn | None = None
        self._bucket: BucketFn | None = None
        self.device = _model_device(model) if model is not None else resolve_device(device)
        if model is not None:
            self._use(model)

    async def load(self) -> None:
        """Load the export (in a thread; the event loop keeps serving /health/live)."""
        if self._model is None:
            self._use(await asyncio.to_thread(load_model, str(self._model_dir), self.device))

    def _use(self, model: InferenceModel) -> None:
        self._model = model
        self._infer = make_infer(model, self.device)
        self._bucket = size_bucket(model)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> InferenceModel:
        """The loaded model; ModelNotLoadedError before start-up loaded it."""
        if self._model is None:
            raise ModelNotLoadedError("the model is not loaded yet")
        return self._model

    def infer(self, images: list[torch.Tensor]) -> list[Detection]:
        """Detections of ``images`` in one model call (the batcher's model workers only)."""
        if self._infer is None:
            raise ModelNotLoadedError("the model is not loaded yet")
        return self._infer(images)

    def bucket(self, image: torch.Tensor) -> Hashable:
        """The batch bucket of ``image``: its size as the model pads it."""
        if self._bucket is None:
            raise ModelNotLoadedError("the model is not loaded yet")
        return self._bucket(image)

    def warmup_image(self) -> torch.Tensor:
        return warmup_image(self.model.preprocess)


def _model_device(model: InferenceModel) -> torch.device:
    """Where an already loaded model's weights live (the CPU for a model without parameters)."""
    return next((parameter.device for parameter in model.module.parameters()), torch.device("cpu"))
