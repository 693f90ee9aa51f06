"""The searches a benchmark relies on: one per seed, recorded as a small committed result file.

A benchmark's searched arms and its ranking use the genotype that the search with each seed
derives. The search runs into ``<out>/search/seed<k>`` (resumable there) and its result is
recorded in ``<results>/searches/seed<k>.json``: the seed, its time, the genotype, and the exact
config the search ran with. The run folder holds checkpoints and is never committed; the record
is. On a new machine, where the run folder is gone, a record whose config is the one the search
would run with now is reused instead of searching again (a search is not bitwise reproducible
across machines, so searching again could derive another genotype than the committed cells
used): this benchmark's own record first, then those of ``bench.search_records`` (another
benchmark that ran the same search, e.g. the ranking whose searches the accuracy benchmark
scores). A record of another config is not reused: the search runs and its record replaces it. A
run folder searched with other settings is refused (FsdError), never taken for this config's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fsd.config import FsdConfig, changed_keys, load_config
from fsd.errors import FsdError
from fsd.models import Genotype, load_genotype
from fsd.models.genotype import genotype_from_dict
from search.loop import search
from search.proxy import SEARCH_CHECKPOINT

#: config sections that do not change what a search does (left out of the comparison)
NOT_SEARCH_SETTINGS = ("name", "bench")


def search_config(config: FsdConfig, seed: int) -> FsdConfig:
    """The search runs on the binary task (its genotype serves every searched arm)."""
    return config.model_copy(update={"seed": seed, "task": "binary"})


def search_settings(config: FsdConfig) -> dict[str, Any]:
    """What a search record is compared on: the whole config but its name and bench section."""
    return {k: v for k, v in config.model_dump(mode="json").items() if k not in NOT_SEARCH_SETTINGS}


def search_record_file(results: Path, seed: int) -> Path:
    """The committed record of the search with ``seed``."""
    return results / "searches" / f"seed{seed}.json"


def recorded_config(config: dict[str, Any]) -> FsdConfig | None:
    """A result's recorded config read through the config model, so that settings added since it
    was written take their defaults (None when it no longer validates: settings since removed or
    renamed, so not a config of today's runs)."""
    try:
        return FsdConfig.model_validate(config)
    except ValidationError:
        return None


def recorded_genotype(record_file: Path, config: FsdConfig) -> Genotype | None:
    """The genotype of a committed search record made with ``config``'s search settings (None
    when there is no such record, or it was made with other settings or before records kept them)."""
    if not record_file.is_file():
        return None
    record = json.loads(record_file.read_text())
    if not isinstance(record.get("config"), dict):
        return None
    recorded = recorded_config({**record["config"], "name": config.name})
    if recorded is None or search_settings(recorded) != search_settings(config):
        return None
    return genotype_from_dict(record["genotype"])


def write_record(record: dict[str, Any], record_file: Path) -> None:
    """Write a search record atomically (a killed run leaves the old one or the new one)."""
    record_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = record_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, record_file)


def committed_search(config: FsdConfig, results: Path, seed: int) -> Genotype | None:
    """The genotype of a committed record of the search with ``seed`` and ``config``'s settings:
    this benchmark's own, else one of ``bench.search_records`` (then kept beside this benchmark's
    results too); None when no record matches."""
    seeded = search_config(config, seed)
    own = search_record_file(results, seed)
    for record_file in (own, *(search_record_file(other, seed) for other in config.bench.search_records)):
        recorded = recorded_genotype(record_file, seeded)
        if recorded is not None:
            if record_file != own:
                write_record(json.loads(record_file.read_text()), own)
            return recorded
    return None


def run_search(config: FsdConfig, out: Path, results: Path, seed: int, device: str, progress: bool) -> Genotype:
    """The genotype the search with ``seed`` derives: from its run folder when it finished there,
    from its committed record when the folder is gone and the record matches, or searched now."""
    seeded = search_config(config, seed)
    run = out / "search" / f"seed{seed}"
    record_file = search_record_file(results, seed)
    if not (run / "genotype.json").is_file():
        recorded = committed_search(config, results, seed)
        if recorded is not None:
            return recorded
        search(seeded, run, resume=(run / SEARCH_CHECKPOINT).is_file(), device=device, progress=progress)
    summary = json.loads((run / "search_summary.json").read_text())
    searched_with = load_config(run / "config.yaml") if (run / "config.yaml").is_file() else seeded
    if search_settings(searched_with) != search_settings(seeded):
        changed = changed_keys(search_settings(searched_with), search_settings(seeded))
        raise FsdError(f"{run} was searched with other settings ({', '.join(changed)} differ from the config's); use another --out")
    record = {"seed": seed, "seconds": summary["seconds"], "genotype": summary["genotype"], "config": search_settings(searched_with)}
    write_record(record, record_file)
    return load_genotype(run / "genotype.json")
