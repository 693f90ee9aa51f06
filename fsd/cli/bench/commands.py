"""`fsd bench ...`: model complexity, accuracy side by side with baselines, how well the search's
proxy ranks architectures, and speed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Benchmarks (results belong in docs/benchmarks.md).", no_args_is_help=True)


@app.command("complexity")
def complexity_command(
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/synth_bench.yaml"),
    genotype: Annotated[Optional[Path], typer.Option("--genotype", "-g", help="Searched genotype (default: the hand-written one).")] = None,
    size: Annotated[int, typer.Option("--size", min=64)] = 512,
) -> None:
    """Parameters and FLOPs of FSD vs the ResNet-50/18-FPN baselines (markdown table)."""
    from fsd.config import load_config

    loaded = load_config(config)  # before torch is imported: a bad config fails at once
    from fsd.cli.bench.complexity import complexity_markdown, complexity_table
    from fsd.models import load_genotype

    rows = complexity_table(loaded, load_genotype(genotype) if genotype else None, size)
    typer.echo(complexity_markdown(rows, size, loaded.preprocess.num_slices))


@app.command("accuracy")
def accuracy_command(
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/bench_cpu.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directories (checkpoints; not for committing).")] = Path("runs/bench_accuracy"),
    results: Annotated[Optional[Path], typer.Option("--results", help="Small result files per cell, the table and figures (default: OUT/results).")] = None,
    arms: Annotated[Optional[str], typer.Option("--arms", help="Comma-separated subset of arms (default: the config's bench.arms, else all).")] = None,
    device: Annotated[str, typer.Option("--device")] = "auto",
    summary_only: Annotated[bool, typer.Option("--summary-only", help="Only rebuild the table and figures from finished cells.")] = False,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Config override key=value (repeatable).")] = None,
) -> None:
    """Train and score every arm over its seeds (resumable by cell), then the table with intervals."""
    import shlex
    import sys

    from fsd.config import load_config

    loaded = load_config(config, overrides)  # before torch is imported: a bad config fails at once
    from fsd.cli.bench.accuracy import ARMS, arm_seeds, run_accuracy_benchmark
    from fsd.cli.bench.accuracy_report import summarize
    from fsd.cli.reproducible import apply_reproducibility

    apply_reproducibility(loaded, device)
    results_dir = results or out / "results"
    chosen = [a.strip() for a in arms.split(",")] if arms else list(loaded.bench.arms or ARMS)
    if not summary_only:
        run_accuracy_benchmark(loaded, out, results_dir, chosen, device)
    planned = {name: len(arm_seeds(ARMS[name], loaded)) for name in chosen if name in ARMS}
    typer.echo(summarize(results_dir, loaded.bench.bootstrap, command=shlex.join(["fsd", *sys.argv[1:]]), order=list(ARMS), planned=planned))


@app.command("ranking")
def ranking_command(
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/bench_ranking_cpu.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directories (checkpoints; not for committing).")] = Path("runs/bench_ranking"),
    results: Annotated[Optional[Path], typer.Option("--results", help="Small result files per architecture and search, the report and plot (default: OUT/results).")] = None,
    device: Annotated[str, typer.Option("--device")] = "auto",
    summary_only: Annotated[bool, typer.Option("--summary-only", help="Only rebuild the report from finished result files.")] = False,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Config override key=value (repeatable).")] = None,
) -> None:
    """How well the supernet ranks architectures of its space: each trained stand-alone (resumable by
    architecture), scored by each search's supernet, Kendall's tau with its interval."""
    import shlex
    import sys

    from fsd.config import load_config

    loaded = load_config(config, overrides)  # before torch is imported: a bad config fails at once
    from fsd.cli.bench.ranking import run_ranking_benchmark
    from fsd.cli.bench.ranking_report import summarize_ranking
    from fsd.cli.reproducible import apply_reproducibility

    apply_reproducibility(loaded, device)
    results_dir = results or out / "results"
    if not summary_only:
        run_ranking_benchmark(loaded, out, results_dir, device)
    typer.echo(summarize_ranking(results_dir, loaded.bench.ranking.metric, loaded.bench.bootstrap, command=shlex.join(["fsd", *sys.argv[1:]])))


def _ints(text: str) -> list[int]:
    from fsd.errors import FsdError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise FsdError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise FsdError(f"expected positive integers, got {text!r}")
    return values


@app.command("speed")
def speed_command(
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="Exported model directory or training checkpoint (default: the default genotype).")] = None,
    compare: Annotated[Optional[list[Path]], typer.Option("--compare", help="Another FSD model (export directory or checkpoint) timed in the same run, e.g. the same genotype without the graph; repeatable.")] = None,
    size: Annotated[Optional[int], typer.Option("--size", min=64, help="Square input side (default 512 on GPU, 256 on CPU).")] = None,
    batches: Annotated[Optional[str], typer.Option("--batches", help="Comma-separated batch sizes (default 1,8,16,32,64 on GPU, 1,2 on CPU).")] = None,
    precisions: Annotated[Optional[str], typer.Option("--precisions", help="fp32,bf16,fp16 (default fp32,bf16 on GPU, fp32 on CPU).")] = None,
    modes: Annotated[str, typer.Option("--modes", help="eager,torchscript")] = "eager,torchscript",
    warmup: Annotated[int, typer.Option("--warmup", min=0)] = 5,
    repeats: Annotated[Optional[int], typer.Option("--repeats", min=1, help="Timed calls per cell (default 30 on GPU, 3 on CPU).")] = None,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Also time torchvision's R50-FPN.")] = True,
    profile: Annotated[bool, typer.Option("--profile/--no-profile", help="Also time FSD stage by stage (eager).")] = True,
    device: Annotated[str, typer.Option("--device")] = "auto",
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="torch CPU threads (default: torch's own).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/bench_speed"),
) -> None:
    """Latency/throughput of FSD and torchvision's Faster R-CNN R50-FPN in the same run, and
    where FSD spends its time; the table names the device (on a CPU: model, vector extensions,
    cores, kernel dispatch and threads)."""
    import json

    import torch

    from fsd.cli.bench.profile import profile_markdown
    from fsd.cli.bench.speed import (
        TorchvisionBaseline,
        benchmark_model,
        load_fsd_module,
        model_label,
        profile_model,
        relative_markdown,
        rows_as_dicts,
        speed_markdown,
    )
    from fsd.cpu import cpu_description
    from fsd.device import resolve_device
    from fsd.errors import FsdError

    target = resolve_device(device)
    gpu = target.type == "cuda"
    if threads is not None:
        torch.set_num_threads(threads)
    side = size or (512 if gpu else 256)
    batch_sizes = _ints(batches) if batches else ([1, 8, 16, 32, 64] if gpu else [1, 2])
    chosen_precisions = [p.strip() for p in (precisions or ("fp32,bf16" if gpu else "fp32")).split(",")]
    chosen_modes = [m.strip() for m in modes.split(",")]
    if set(chosen_precisions) - {"fp32", "bf16", "fp16"} or set(chosen_modes) - {"eager", "torchscript"}:
        raise FsdError("precisions are fp32/bf16/fp16 and modes eager/torchscript")
    if gpu:
        torch.backends.cudnn.benchmark = True
    fsd_module, channels = load_fsd_module(model, side)
    reference = "FSD" if not compare or model is None else f"FSD {model_label(model)}"
    rows = benchmark_model(reference, fsd_module, target, side, channels, batch_sizes, chosen_precisions, chosen_modes, warmup, repeats or (30 if gpu else 3))
    for other in compare or []:
        other_module, other_channels = load_fsd_module(other, side)
        rows += benchmark_model(f"FSD {model_label(other)}", other_module, target, side, other_channels, batch_sizes, chosen_precisions, chosen_modes, warmup, repeats or (30 if gpu else 3))
    if baseline:
        torch.manual_seed(0)
        rows += benchmark_model("R50-FPN (torchvision)", TorchvisionBaseline(side), target, side, 3, batch_sizes, chosen_precisions, chosen_modes, warmup, repeats or (30 if gpu else 3))
    name = torch.cuda.get_device_name(target) if gpu else "CPU"
    cpu = None if gpu else cpu_description()
    table = speed_markdown(rows, name if cpu is None else f"{name}: {cpu}", side)
    if compare:
        table += "\n\n" + relative_markdown(rows, reference)
    stages: dict[str, dict[str, float]] = {}
    if profile:
        profiled = sorted({batch_sizes[0], batch_sizes[-1]})
        stages = profile_model(fsd_module, target, side, channels, profiled, chosen_precisions[0], warmup, repeats or (30 if gpu else 3))
        table += "\n\nFSD (eager) per stage, ms per image:\n\n" + profile_markdown(stages)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.md").write_text(table + "\n")
    (out / "speed.json").write_text(json.dumps({"device": name, "cpu": cpu, "size": side, "rows": rows_as_dicts(rows), "profile": stages}, indent=2) + "\n")
    typer.echo(table)


@app.command("train-step")
def train_step_command(
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/demo.yaml"),
    genotype: Annotated[Optional[Path], typer.Option("--genotype", "-g", help="Genotype to train (default: the hand-written one).")] = None,
    iterations: Annotated[int, typer.Option("--iterations", min=1)] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=0)] = 3,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Config override key=value (repeatable).")] = None,
) -> None:
    """Where a training step spends its time: data, forward stages, backward, optimizer."""
    from fsd.config import load_config

    loaded = load_config(config, overrides)  # before torch is imported: a bad config fails at once
    from fsd.cli.bench.train_profile import profile_training_step, train_profile_markdown
    from fsd.cli.data_setup import ensure_data
    from fsd.cli.reproducible import apply_reproducibility
    from fsd.models import architecture_record, load_genotype

    apply_reproducibility(loaded, device)
    ensure_data(loaded, device)
    architecture = architecture_record(genotype=load_genotype(genotype)) if genotype else None
    stages = profile_training_step(loaded, architecture, iterations, warmup, device)
    typer.echo(train_profile_markdown({config.stem: stages}))
