"""`fsd demo` (what `make demo` runs): the whole product on the embedded default, end to end.

1. synthetic DeepLesion-format data with DICOM series (``data.root`` of the config);
2. ``fsd search`` -> genotype.json; 3. ``fsd train`` -> best.pt; 4. ``fsd evaluate`` on the test
   split -> report.json, froc.png; 5. ``fsd export`` -> model.ts, model.json;
6. the server on loopback with a fresh API key, a synthetic DICOM series of a test patient POSTed
   to /v1/detect, the key slice's detections printed next to its ground truth, the server stopped.

Each stage reuses finished output and resumes an interrupted one, so re-running is cheap; a run
folder made with other settings is refused. ``demo.json`` records the run: settings, CPU and
reproducible mode, genotype, parameters, minutes per stage and the test and unseen metrics.

The stages' packages (torch among them) are imported where a stage runs, so that registering
the command, ``fsd --help`` and a config error stay fast.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from fsd.cli.pipeline import SetOption
from fsd.config import FsdConfig, changed_keys, load_config
from fsd.constants import lesion_type_name
from fsd.errors import FsdError

if TYPE_CHECKING:
    from fsd.data.dl_info import KeySliceRecord

console = Console()


def _stage(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_demo_data(config: FsdConfig) -> None:
    """The demo's synthetic data set, with the DICOM series the served query needs."""
    from fsd.cli.data_setup import ensure_data

    if config.data.synth is None:
        raise FsdError("the demo config needs data.synth to generate its data")
    root = config.data.root
    if (root / "DL_info.csv").is_file() and (root / "dicom").is_dir():
        console.print(f"reusing synthetic data in {root}")
    ensure_data(config, dicom=True)  # checks that existing data was generated with data.synth's settings


def run_search(config: FsdConfig, out: Path) -> Path:
    from search.loop import search
    from search.proxy import SEARCH_CHECKPOINT

    genotype = out / "genotype.json"
    if genotype.is_file():
        console.print(f"reusing {genotype}")
        return genotype
    return search(config, out, resume=(out / SEARCH_CHECKPOINT).is_file()).genotype_path


def run_training(config: FsdConfig, genotype: Path, out: Path) -> Path:
    from fsd.engine.trainer import train
    from fsd.models import architecture_record, load_genotype

    best, last = out / "best.pt", out / "last.pt"
    if (out / "summary.json").is_file():
        console.print(f"reusing {out}")
        return best if best.is_file() else last
    result = train(config, architecture_record(genotype=load_genotype(genotype)), out, resume=last.is_file())
    return result.best_checkpoint or result.last_checkpoint


def pick_test_key_slice(config: FsdConfig) -> KeySliceRecord:
    """The test-split key slice with the most lesions whose DICOM series exists."""
    from fsd.engine.datasets import split_records

    test = [r for r in split_records(config, "test") if (config.data.root / "dicom" / r.folder).is_dir()]
    if not test:
        raise FsdError("no test-split key slice with a DICOM series; regenerate the demo data")
    return max(test, key=lambda r: (len(r.lesions), -r.patient))


def series_files(config: FsdConfig, record: KeySliceRecord) -> list[Path]:
    """The key slice's DICOM file and its neighbours within the slice context reach."""
    folder = config.data.root / "dicom" / record.folder
    reach = config.preprocess.slice_interval_mm * (config.preprocess.num_slices // 2)
    steps = int(np.ceil(reach / record.slice_interval_mm)) + 1
    wanted = range(record.key_slice - steps, record.key_slice + steps + 1)
    return [folder / f"{i:03d}.dcm" for i in wanted if (folder / f"{i:03d}.dcm").is_file()]


def start_server(model_dir: Path, port: int, api_key: str) -> subprocess.Popen:
    env = {**os.environ, "FSD_API_KEY": api_key, "FSD_MODEL_DIR": str(model_dir)}
    command = [sys.executable, "-m", "fsd", "serve", "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(base: str, process: subprocess.Popen, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FsdError(f"the server exited early:\n{process.stderr.read() if process.stderr else ''}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise FsdError(f"the server was not ready within {timeout_s:.0f} s")


def query_server(config: FsdConfig, model_dir: Path) -> dict[str, Any]:
    """Serve the exported model, POST a test patient's DICOM series, print detections vs truth."""
    from fsd.eval import iou_matrix

    record = pick_test_key_slice(config)
    files = series_files(config, record)
    port, api_key = _free_port(), secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}"
    process = start_server(model_dir, port, api_key)
    try:
        wait_ready(base, process)
        multipart = [("files", (f.name, f.read_bytes(), "application/dicom")) for f in files]
        response = httpx.post(f"{base}/v1/detect", files=multipart, headers={"X-API-Key": api_key}, timeout=120.0)
        if response.status_code != 200:
            raise FsdError(f"/v1/detect answered {response.status_code}: {response.text}")
        answer = response.json()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    key_name = f"{record.key_slice:03d}.dcm"
    key_result = next(r for r in answer["results"] if Path(str(r.get("source", ""))).name == key_name)
    table = Table(title=f"{record.folder} slice {record.key_slice}: POSTed {len(files)} DICOM slices, {len(answer['results'])} results")
    for column in ("", "type (P given a lesion)", "box (px)", "score", "IoU with truth", "true type"):
        table.add_column(column)
    for lesion in record.lesions:
        table.add_row("truth", _type_name(lesion.lesion_type), _box(lesion.box), "", "", "")
    shown = [d for d in key_result["detections"] if d["score"] >= 0.3][:8]
    truth = np.array([les.box for les in record.lesions], dtype=np.float64).reshape(-1, 4)
    for detection in shown:
        overlaps = iou_matrix(np.array([detection["box_px"]], dtype=np.float64), truth)
        best = float(overlaps.max()) if overlaps.size else 0.0
        matched = record.lesions[int(overlaps.argmax())] if overlaps.size and best >= 0.5 else None
        probability = detection.get("type_scores", {}).get(detection["type"])
        typed = detection["type"] + (f" ({probability:.2f})" if probability is not None else "")
        true_type = "-" if matched is None else _type_name(matched.lesion_type) + (" ✓" if _type_name(matched.lesion_type) == detection["type"] else " ✗")
        table.add_row("detected", typed, _box(detection["box_px"]), f"{detection['score']:.2f}", f"{best:.2f}", true_type)
    console.print(table)
    console.print(f"timing (ms): {json.dumps(answer.get('timing_ms', {}))}")
    return answer


def _type_name(type_id: int) -> str:
    return lesion_type_name(type_id) if 1 <= type_id <= 8 else "lesion"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _box(box: Any) -> str:
    return "[" + ", ".join(f"{float(v):.0f}" for v in box) + "]"


def score_unseen(config: FsdConfig, checkpoint: Path, out: Path) -> dict[str, Any] | None:
    """The model's report on ``bench.test_data``, a synthetic set from another generator seed that
    no stage of the demo touched (the demo's own test split is too small to say whether a run went
    well); written as ``unseen_report.json``. None when the config names no such set."""
    from fsd.artifacts import load_for_inference
    from fsd.cli.bench.accuracy import test_dataset
    from fsd.device import resolve_device
    from fsd.engine.prediction import predict_dataset, score_predictions

    if config.bench.test_data is None:
        return None
    dataset, description = test_dataset(config)
    device = resolve_device("auto")
    model = load_for_inference(checkpoint, device)
    predictions = predict_dataset(model.module, dataset, device, config.eval.batch_size, progress=True)
    report = score_predictions(predictions, config.num_classes, config.eval.fps, config.eval.iou)
    report["data"] = description
    (out / "unseen_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


#: the metrics ``demo.json`` keeps of each report
SUMMARY_METRICS = ("froc_mean_0.5_4", "AP", "AP50", "mAP50_types", "type_accuracy", "num_lesions")


def claim_run_folder(config: FsdConfig, out: Path) -> None:
    """Write the demo's settings to ``out/demo_config.json``, or check that the folder's earlier
    run had the same ones: its finished stages are reused, so another seed or setting needs
    another ``--out``."""
    settings = config.model_dump(mode="json")
    path = out / "demo_config.json"
    if path.is_file():
        try:
            earlier = FsdConfig.model_validate(json.loads(path.read_text())).model_dump(mode="json")
        except (ValueError, TypeError):
            earlier = {}
        if earlier != settings:
            changed = changed_keys(earlier, settings)
            raise FsdError(
                f"{out} holds a demo run made with other settings ({', '.join(changed) or 'unreadable'} differ); "
                f"its finished stages would be reused: pass another --out or remove {out}"
            )
        return
    if any((out / stage).exists() for stage in ("search", "train", "export")):
        raise FsdError(f"{out} holds a demo run of unknown settings (no {path.name}): pass another --out or remove {out}")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")


def _summary_metrics(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    metrics = {f"sens@{fp}": report["froc"][fp] for fp in report["froc"]}
    metrics.update({key: report.get(key) for key in SUMMARY_METRICS})
    return metrics


def run_demo(config_path: Path, out: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    config = load_config(config_path, overrides)  # before torch is imported: a bad config fails at once
    from fsd.cli.reproducible import apply_reproducibility
    from fsd.cpu import cpu_description
    from fsd.engine.evaluation import evaluate_model
    from fsd.export import export_model

    reproducible = apply_reproducibility(config)
    claim_run_folder(config, out)
    starts: list[tuple[str, float]] = []  # each stage's name and start, in order

    def stage(title: str, name: str) -> None:
        starts.append((name, time.monotonic()))
        _stage(title)

    stage("1/6 synthetic DeepLesion-format data (+ DICOM series)", "data")
    ensure_demo_data(config)
    stage("2/6 architecture search", "search")
    genotype = run_search(config, out / "search")
    stage("3/6 training the derived network from scratch", "train")
    checkpoint = run_training(config, genotype, out / "train")
    stage("4/6 evaluation on the test split", "evaluate")
    report = evaluate_model(checkpoint, config.data.root, split="test", out_dir=out / "train", batch_size=config.eval.batch_size)
    unseen = score_unseen(config, checkpoint, out / "train")
    stage("5/6 export (TorchScript + model card)", "export")
    exported = export_model(checkpoint, out / "export", report=out / "train" / "report.json")
    console.print(f"wrote {exported.model_path} and {exported.card_path}")
    stage("6/6 serving: POST a synthetic DICOM series to /v1/detect", "serve")
    query_server(config, out / "export")
    stage("demo finished", "done")
    total = (time.monotonic() - started) / 60
    minutes = {name: round((end - begin) / 60, 2) for (name, begin), (_, end) in zip(starts, starts[1:])}
    card = json.loads(exported.card_path.read_text())
    summary = {
        "config": str(config_path),
        "overrides": list(overrides or []),
        "seed": config.seed,
        "reproducible_mode": reproducible,
        "cpu": cpu_description(),
        "genotype": json.loads(Path(genotype).read_text()),
        "parameters": card.get("parameters"),
        "minutes": {"total": round(total, 2), **minutes},
        "test_split": _summary_metrics(report),
        "unseen": _summary_metrics(unseen),
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(
        f"test split: sensitivity {100 * report['froc']['4']:.1f}% at 4 FPs/image, "
        f"{100 * report['froc']['1']:.1f}% at 1 FP/image, mean(0.5-4) {100 * report['froc_mean_0.5_4']:.1f}%, "
        f"AP50 {100 * report['AP50']:.1f}%  ({total:.1f} min)"
    )
    if report.get("type_accuracy") is not None:
        recall = ", ".join(f"{name} {_percent(value)}" for name, value in report["type_recall"].items())
        console.print(
            f"types: mAP50 over types {_percent(report['mAP50_types'])}, type accuracy of found lesions "
            f"{_percent(report['type_accuracy'])}; recall by type: {recall}"
        )
    if unseen is not None:
        console.print(
            f"unseen test set ({unseen['num_lesions']} lesions no stage of the demo touched): sensitivity "
            f"{100 * unseen['froc']['4']:.1f}% at 4 FPs/image, mean(0.5-4) {100 * unseen['froc_mean_0.5_4']:.1f}%, "
            f"AP50 {100 * unseen['AP50']:.1f}%"
            + (f", type accuracy {_percent(unseen['type_accuracy'])}" if unseen.get("type_accuracy") is not None else "")
        )
    console.print(f"plots: {out / 'search' / 'alphas.png'}, {out / 'train' / 'training.png'}, {out / 'train' / 'froc.png'}")
    return report


def demo_command(
    config: Annotated[Path, typer.Option("--config", "-c")] = Path("configs/demo.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/demo"),
    overrides: SetOption = None,
) -> None:
    """Run the whole pipeline on synthetic data and query the served model (see `make demo`)."""
    run_demo(config, out, overrides)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
