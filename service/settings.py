"""Service settings: environment variables (``FSD_*``) over an optional YAML/JSON file over defaults.

``load_settings(config_file, **overrides)`` is the one way to build them: explicit overrides (the
``fsd serve`` flags) win, then ``FSD_<NAME>`` environment variables, then the settings file
(``config_file`` or ``$FSD_SETTINGS_FILE``), then the defaults below.

Secure by default: without an API key the server only listens on a loopback address; binding
anything else without a key is a validation error unless ``allow_insecure`` is set explicitly.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from fsd.errors import ConfigError

#: environment variable naming the optional settings file
SETTINGS_FILE_ENV = "FSD_SETTINGS_FILE"
MIB = 2**20
MIN_API_KEY_LENGTH = 16


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServiceSettings(BaseSettings):
    """Everything the inference server can be told; see docs/service.md for each setting."""

    model_config = SettingsConfigDict(env_prefix="FSD_", extra="forbid", yaml_file=None, protected_namespaces=())

    model_dir: Path = Field(Path("/models/fsd"), description="Exported model directory (model.ts + model.json).")
    device: str = Field("auto", description='"auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".')
    host: str = Field("127.0.0.1", description="Address `fsd serve` binds.")
    port: int = Field(8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(None, description="Clients send it as X-API-Key or Authorization: Bearer.")
    allow_insecure: bool = Field(False, description="Serve without an API key on a non-loopback address.")
    max_request_mib: float = Field(256.0, gt=0, description="Largest request body; larger ones get 413.")
    max_files: int = Field(2000, ge=1, description="Most DICOM files (parts) in one request.")
    max_pixel_mib_per_file: float = Field(256.0, gt=0, description="Pixel budget of one DICOM file.")
    max_batch_slices: int = Field(8, ge=1, description="Most slices in one model call.")
    max_wait_ms: float = Field(10.0, ge=0, description="How long a batch waits for more slices.")
    max_queue_slices: int = Field(512, ge=1, description="Slices waiting for the model; beyond that 503.")
    max_concurrent_requests: int = Field(64, ge=1, description="Detection requests in progress; beyond that 503.")
    request_timeout_s: float = Field(120.0, gt=0, description="Per-request deadline; past it 504.")
    retry_after_s: int = Field(2, ge=1, description="Retry-After sent with 503 answers.")
    decode_workers: int = Field(2, ge=1, description="Threads decoding DICOM and preparing inputs.")
    min_score: float = Field(0.05, ge=0, le=1, description="Default min_score of the detect routes.")
    warmup_runs: int = Field(2, ge=0, description="Inference calls made before /health/ready turns 200.")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="Time allowed to finish queued work on shutdown.")
    log_level: str = Field("info", description="Python logging level name of the service loggers.")

    @field_validator("api_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_API_KEY_LENGTH} characters long")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto" and not (value == "cpu" or value == "cuda" or value.startswith("cuda:")):
            raise ValueError('must be "auto", "cpu", "cuda" or "cuda:N"')
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("must be one of critical, error, warning, info, debug")
        return value.lower()

    @model_validator(mode="after")
    def _secure_by_default(self) -> ServiceSettings:
        if self.api_key is None and not self.allow_insecure and not is_loopback(self.host):
            raise ValueError(
                f"refusing to serve on {self.host} without an API key: set FSD_API_KEY (or api_key in the "
                "settings file), listen on 127.0.0.1, or set FSD_ALLOW_INSECURE=true to serve without "
                "authentication"
            )
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.api_key is not None

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mib * MIB)

    @property
    def max_pixel_bytes_per_file(self) -> int:
        return int(self.max_pixel_mib_per_file * MIB)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls), file_secret_settings)


def _describe(error: ValidationError) -> str:
    """One line per problem, naming the setting; input values are left out (one may be a key)."""
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{location}: {message}" if location else message)
    return "; ".join(lines)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> ServiceSettings:
    """Build validated settings; raises ConfigError with a readable message when they are invalid."""
    file = config_file if config_file is not None else os.environ.get(SETTINGS_FILE_ENV) or None
    settings_class: type[ServiceSettings] = ServiceSettings
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"settings file {path} does not exist")
        config = SettingsConfigDict(**{**ServiceSettings.model_config, "yaml_file": path})
        settings_class = type("ServiceSettingsFromFile", (ServiceSettings,), {"model_config": config})
    try:
        return settings_class(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as error:
        where = f" ({file})" if file is not None else ""
        raise ConfigError(f"invalid service settings{where}: {_describe(error)}") from None
    except (OSError, ValueError, yaml.YAMLError) as error:  # unreadable or malformed file
        raise ConfigError(f"cannot read settings file {file}: {error}") from None
