"""Settings of the DICOM node and the SR destination: secure defaults and refused combinations."""

from __future__ import annotations

import pytest

from fsd.errors import ConfigError
from service.http.settings import load_settings

NODE = {"dicom_enabled": True, "dicom_allowed_calling_ae_titles": ["ORTHANC"]}
KEY = "k" * 24


def test_the_dicom_node_and_deliveries_are_off_by_default():
    settings = load_settings()
    assert not settings.dicom_enabled and not settings.has_sr_destination
    assert settings.dicom_ae_title == "FSD" and settings.dicom_port == 11112


def test_environment_configures_the_node_with_json_lists(monkeypatch):
    monkeypatch.setenv("FSD_DICOM_ENABLED", "true")
    monkeypatch.setenv("FSD_DICOM_ALLOWED_CALLING_AE_TITLES", '["ORTHANC", "ROUTER"]')
    monkeypatch.setenv("FSD_DICOM_ALLOWED_HOSTS", '["10.0.0.5"]')
    monkeypatch.setenv("FSD_SR_DESTINATION_STOW_URL", "https://orthanc:8042/dicom-web/")
    monkeypatch.setenv("FSD_SR_DESTINATION_AUTHORIZATION", "Basic Zm9vOmJhcg==")
    settings = load_settings()
    assert settings.dicom_allowed_calling_ae_titles == ["ORTHANC", "ROUTER"]
    assert settings.dicom_allowed_hosts == ["10.0.0.5"]
    assert settings.sr_destination_stow_url == "https://orthanc:8042/dicom-web"
    assert settings.dicom_bind_host == settings.host


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"dicom_enabled": True}, "dicom_allowed_calling_ae_titles"),
        ({"dicom_ae_title": "A" * 17}, "not an AE title"),
        ({"dicom_allowed_calling_ae_titles": ["BAD\\AE"]}, "not an AE title"),
        ({"dicom_allowed_hosts": ["pacs.local"]}, "not an IP address"),
        ({"sr_destination_ae_title": "PACS"}, "needs all of"),
        (
            {"sr_destination_ae_title": "PACS", "sr_destination_host": "h", "sr_destination_port": 104,
             "sr_destination_stow_url": "http://x"},
            "one SR destination",
        ),
        ({"sr_destination_stow_url": "ftp://x"}, "http:// or https://"),
        ({"sr_destination_authorization": "Basic abc"}, "only used with sr_destination_stow_url"),
        ({"sr_destination_ca_bundle": "/etc/hostname"}, "only used with sr_destination_stow_url"),
        ({"sr_spool_dir": "/tmp/fsd-spool"}, "only used with an SR destination"),
        ({"max_study_mib": 4096}, "must not exceed max_pending_mib"),
        ({"sr_destination_stow_url": "https://pacs", "sr_destination_ca_bundle": "/no/such/ca.pem"}, "is not a file"),
        ({**NODE, "host": "0.0.0.0", "api_key": KEY}, "dicom_allowed_hosts"),
        ({**NODE, "dicom_host": "10.20.0.3"}, "dicom_allowed_hosts"),
        ({"sr_destination_stow_url": "http://pacs.hospital:8042/dicom-web", "sr_destination_authorization": "Basic abc"},
         "clear text"),
    ],
)
def test_invalid_pacs_settings_are_refused(values, fragment):
    with pytest.raises(ConfigError) as raised:
        load_settings(**values)
    assert fragment in str(raised.value)


def test_the_delivery_authorization_is_never_echoed():
    with pytest.raises(ConfigError) as raised:
        load_settings(sr_destination_authorization="Bearer very-secret-token", sr_destination_ae_title="X")
    assert "very-secret-token" not in str(raised.value)


@pytest.mark.parametrize(
    "values",
    [
        {**NODE, "host": "0.0.0.0", "api_key": KEY, "dicom_allowed_hosts": ["10.20.0.15"]},
        {**NODE, "host": "0.0.0.0", "api_key": KEY, "dicom_host": "127.0.0.1"},
        {**NODE, "host": "0.0.0.0", "api_key": KEY, "allow_insecure": True},
        {"sr_destination_stow_url": "https://pacs.hospital/dicom-web", "sr_destination_authorization": "Basic abc"},
        {"sr_destination_stow_url": "http://127.0.0.1:8042/dicom-web", "sr_destination_authorization": "Basic abc"},
        {"sr_destination_stow_url": "http://pacs:8042/dicom-web", "sr_destination_authorization": "Basic abc",
         "allow_insecure": True},
        {"sr_destination_stow_url": "http://pacs:8042/dicom-web"},
    ],
    ids=["allowed-hosts", "loopback-node", "insecure-node", "https", "loopback-http", "insecure-http", "no-credentials"],
)
def test_secure_pacs_settings_and_explicit_insecure_ones_load(values):
    assert load_settings(**values).allow_insecure == values.get("allow_insecure", False)


def test_the_intake_spool_needs_the_sr_spool_with_a_destination(tmp_path):
    pacs = {"sr_destination_ae_title": "PACS", "sr_destination_host": "127.0.0.1", "sr_destination_port": 104}
    assert load_settings(intake_spool_dir=tmp_path / "intake").intake_spool_dir == tmp_path / "intake"
    with pytest.raises(ConfigError, match="intake_spool_dir needs sr_spool_dir"):
        load_settings(intake_spool_dir=tmp_path / "intake", **pacs)
    both = load_settings(intake_spool_dir=tmp_path / "intake", sr_spool_dir=tmp_path / "sr", **pacs)
    assert both.intake_spool_dir != both.sr_spool_dir
    with pytest.raises(ConfigError, match="must be different directories"):
        load_settings(intake_spool_dir=tmp_path / "spool", sr_spool_dir=tmp_path / "spool", **pacs)
