"""Service settings: environment variables (``FSD_*``) over an optional YAML/JSON file over defaults.

``load_settings(config_file, **overrides)`` is the one way to build them: explicit overrides (the
``fsd serve`` flags) win, then ``FSD_<NAME>`` environment variables, then the settings file
(``config_file`` or ``$FSD_SETTINGS_FILE``), then the defaults below.

Secure by default, each rule lifted only by setting ``allow_insecure`` explicitly:

- without an API key the server only listens on a loopback address;
- the DICOM node is off unless ``dicom_enabled``, and then only accepts the calling AE titles it
  is given; DIMSE has no user authentication and AE titles are easily spoofed, so a node
  listening on a non-loopback address also needs ``dicom_allowed_hosts``;
- credentials (``sr_destination_authorization``) only go over HTTPS, or plain HTTP to a
  loopback address; ``sr_destination_ca_bundle`` names the CA certificates the STOW-RS client
  trusts when the PACS's certificate is not signed by a public CA.

Findings go back to at most one
destination: a DICOM AE (``sr_destination_ae_title``/``host``/``port``) or a DICOMweb server
(``sr_destination_stow_url``).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
#: PS3.5 AE title: 1 to 16 characters of the default repertoire, no backslash or control characters
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def check_ae_title(value: str) -> str:
    """``value`` stripped, or ValueError when it is not a valid AE title."""
    title = value.strip()
    if not title or not _AE_TITLE.match(title):
        raise ValueError(f"{value!r} is not an AE title (1 to 16 printable ASCII characters, no backslash)")
    return title


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
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="Threads of each model worker's CPU operations; default on a CPU: 1 with several model workers, "
        "else one fewer than the cores (at least 1), so that decoding and HTTP keep a core (docs/benchmarks.md); on a "
        "GPU torch's own.",
    )
    model_workers: int | None = Field(
        None,
        ge=1,
        description="Threads running the model, each on its own batches; default on a CPU: one per physical core, each "
        "with one torch thread (no synchronisation between cores at every operation; docs/benchmarks.md); on a GPU: 1.",
    )
    min_score: float = Field(0.05, ge=0, le=1, description="Default min_score of the detect routes.")
    warmup_runs: int = Field(2, ge=0, description="Inference calls made before /health/ready turns 200.")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="Time allowed to finish queued work on shutdown.")
    log_level: str = Field("info", description="Python logging level name of the service loggers.")
    public_url: str | None = Field(
        None, description="Base URL clients reach the server at, for STOW-RS RetrieveURLs (default: from the request)."
    )
    # the DICOM node (DIMSE C-ECHO / C-STORE SCP)
    dicom_enabled: bool = Field(False, description="Start the DICOM node (C-ECHO and C-STORE SCP) with the server.")
    dicom_host: str | None = Field(None, description="Address the DICOM node binds (default: host).")
    dicom_port: int = Field(11112, ge=0, le=65535, description="TCP port of the DICOM node (0: any free port).")
    dicom_ae_title: str = Field("FSD", description="The node's AE title; also the calling AE title of SR C-STOREs.")
    dicom_allowed_calling_ae_titles: list[str] = Field(
        default_factory=list, description="Calling AE titles the node accepts associations from (required)."
    )
    dicom_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="IP addresses the node accepts associations from (empty: any, refused on a non-loopback address).",
    )
    dicom_study_quiet_s: float = Field(
        0.0, ge=0, description="0: analyse a study when its association ends; else once no instance came for this long."
    )
    dicom_max_associations: int = Field(16, ge=1, description="Concurrent associations the node accepts.")
    dicom_timeout_s: float = Field(60.0, gt=0, description="Network and DIMSE timeout of the DICOM node.")
    # studies received by STOW-RS or the DICOM node, held (encoded) until analysed
    stow_study_quiet_s: float = Field(
        5.0, ge=0, description="A study received by STOW-RS is analysed once no instance of it came for this long."
    )
    max_study_mib: float = Field(
        1200.0, gt=0, description="Encoded bytes of one study held for analysis (2000 slices of 512 x 512 take 1000 MiB)."
    )
    max_study_instances: int = Field(3000, ge=1, description="Instances of one study held for analysis.")
    max_pending_mib: float = Field(
        2048.0, gt=0, description="Memory for received instances waiting for (or in) analysis; beyond it intake refuses for now."
    )
    max_concurrent_studies: int = Field(2, ge=1, description="Studies analysed at the same time (STOW-RS and DICOM node).")
    analysis_retry_initial_s: float = Field(
        0.5, gt=0, description="First delay before a study's slices refused for load (queue full, deadline) are sent again."
    )
    analysis_retry_max_s: float = Field(15.0, gt=0, description="Longest delay between those attempts (they go on until shutdown).")
    # where findings go (at most one destination)
    sr_destination_ae_title: str | None = Field(None, description="AE title the SR is C-STOREd to.")
    sr_destination_host: str | None = Field(None, description="Host of the SR destination AE.")
    sr_destination_port: int | None = Field(None, ge=1, le=65535, description="Port of the SR destination AE.")
    sr_destination_stow_url: str | None = Field(
        None, description="DICOMweb base URL the SR is stored to with STOW-RS (POST {url}/studies)."
    )
    sr_destination_authorization: SecretStr | None = Field(
        None, description="Authorization header value sent with STOW-RS deliveries, e.g. 'Basic ...' or 'Bearer ...'."
    )
    sr_destination_ca_bundle: Path | None = Field(
        None, description="CA certificates (PEM file) the STOW-RS client trusts for an https:// destination (default: the system's)."
    )
    delivery_max_queue: int = Field(1000, ge=1, description="SRs waiting for delivery; when full, new studies are refused.")
    delivery_retry_initial_s: float = Field(2.0, gt=0, description="First delay before retrying a failed delivery.")
    delivery_retry_max_s: float = Field(300.0, gt=0, description="Longest delay between delivery attempts.")
    delivery_timeout_s: float = Field(60.0, gt=0, description="Time allowed for one delivery attempt.")
    sr_spool_dir: Path | None = Field(
        None, description="Directory keeping SRs that wait for delivery across restarts (SRs only; off: lost at shutdown)."
    )
    intake_spool_dir: Path | None = Field(
        None,
        description="Directory keeping received instances from their acknowledgement until their study's SR is made and "
        "spooled, so a restart resumes every acknowledged study (off: memory only; a crash loses studies not analysed yet).",
    )
    sr_max_findings: int = Field(
        50, ge=1, description="Most detections a study's SR carries (highest scores first); /v1/detect is not capped."
    )
    sr_keep_s: float = Field(86400.0, gt=0, description="How long the service keeps its SRs for WADO-RS retrieval.")
    sr_keep_mib: float = Field(256.0, gt=0, description="Memory for kept SRs; the oldest go first beyond it.")

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

    @field_validator("dicom_ae_title", "sr_destination_ae_title")
    @classmethod
    def _ae_title(cls, value: str | None) -> str | None:
        return None if value is None else check_ae_title(value)

    @field_validator("dicom_allowed_calling_ae_titles")
    @classmethod
    def _ae_titles(cls, values: list[str]) -> list[str]:
        return [check_ae_title(value) for value in values]

    @field_validator("dicom_allowed_hosts")
    @classmethod
    def _ip_addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_address(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address") from None
        return [str(ipaddress.ip_address(value.strip())) for value in values]

    @field_validator("sr_destination_stow_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value.strip()):
            raise ValueError("must be an http:// or https:// URL")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _one_consistent_destination(self) -> ServiceSettings:
        dimse = (self.sr_destination_ae_title, self.sr_destination_host, self.sr_destination_port)
        if any(part is not None for part in dimse) and not all(part is not None for part in dimse):
            raise ValueError(
                "a DICOM SR destination needs all of sr_destination_ae_title, sr_destination_host and sr_destination_port"
            )
        if dimse[0] is not None and self.sr_destination_stow_url is not None:
            raise ValueError("configure one SR destination: a DICOM AE or sr_destination_stow_url, not both")
        if self.sr_spool_dir is not None and not self.has_sr_destination:
            raise ValueError("sr_spool_dir is only used with an SR destination")
        if self.intake_spool_dir is not None and self.has_sr_destination and self.sr_spool_dir is None:
            raise ValueError(
                "intake_spool_dir needs sr_spool_dir when an SR destination is set: a study leaves the intake spool once its "
                "SR is made, so the SR must then stay on disk until it is delivered"
            )
        if self.intake_spool_dir is not None and self.sr_spool_dir is not None:
            if Path(self.intake_spool_dir).resolve() == Path(self.sr_spool_dir).resolve():
                raise ValueError("intake_spool_dir and sr_spool_dir must be different directories")
        for name in ("sr_destination_authorization", "sr_destination_ca_bundle"):
            if getattr(self, name) is not None and self.sr_destination_stow_url is None:
                raise ValueError(f"{name} is only used with sr_destination_stow_url")
        if self.sr_destination_ca_bundle is not None and not Path(self.sr_destination_ca_bundle).is_file():
            raise ValueError(f"sr_destination_ca_bundle {self.sr_destination_ca_bundle} is not a file")
        return self

    @model_validator(mode="after")
    def _one_study_fits(self) -> ServiceSettings:
        if self.max_study_mib > self.max_pending_mib:
            raise ValueError("max_study_mib must not exceed max_pending_mib (a whole study must fit in memory)")
        return self

    @model_validator(mode="after")
    def _dicom_node_restricted(self) -> ServiceSettings:
        if self.dicom_enabled and not self.dicom_allowed_calling_ae_titles:
            raise ValueError(
                "the DICOM node accepts only configured peers: set dicom_allowed_calling_ae_titles "
                '(e.g. FSD_DICOM_ALLOWED_CALLING_AE_TITLES=\'["ORTHANC"]\')'
            )
        return self

    @model_validator(mode="after")
    def _secure_by_default(self) -> ServiceSettings:
        if self.allow_insecure:
            return self
        if self.api_key is None and not is_loopback(self.host):
            raise ValueError(
                f"refusing to serve on {self.host} without an API key: set FSD_API_KEY (or api_key in the "
                "settings file), listen on 127.0.0.1, or set FSD_ALLOW_INSECURE=true to serve without "
                "authentication"
            )
        if self.dicom_enabled and not self.dicom_allowed_hosts and not is_loopback(self.dicom_bind_host):
            raise ValueError(
                f"refusing to run the DICOM node on {self.dicom_bind_host} for any host: calling AE titles are "
                "easily spoofed, so set dicom_allowed_hosts to the PACS or router addresses "
                '(e.g. FSD_DICOM_ALLOWED_HOSTS=\'["10.20.0.15"]\'), bind dicom_host to 127.0.0.1, or set '
                "FSD_ALLOW_INSECURE=true"
            )
        url = self.sr_destination_stow_url
        if url is not None and self.sr_destination_authorization is not None:
            parts = urlsplit(url)
            if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
                raise ValueError(
                    "refusing to send sr_destination_authorization in clear text: use an https:// "
                    "sr_destination_stow_url (with sr_destination_ca_bundle for a private CA), or set "
                    "FSD_ALLOW_INSECURE=true"
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

    @property
    def max_pending_bytes(self) -> int:
        return int(self.max_pending_mib * MIB)

    @property
    def max_study_bytes(self) -> int:
        return int(self.max_study_mib * MIB)

    @property
    def sr_keep_bytes(self) -> int:
        return int(self.sr_keep_mib * MIB)

    @property
    def dicom_bind_host(self) -> str:
        return self.dicom_host if self.dicom_host is not None else self.host

    @property
    def has_sr_destination(self) -> bool:
        return self.sr_destination_ae_title is not None or self.sr_destination_stow_url is not None

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
