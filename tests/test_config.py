"""config.toml → frozen values: defaults, relative paths, and errors that
name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.web.app import create_app
from proxy.config import Config, ConfigError, load_config, parse_config

from .support import ROOT


def test_shipped_config() -> None:
    config = load_config(ROOT / "config.toml")
    assert config.server.port == 8080
    assert config.catalogue.path == ROOT / "catalogue"
    assert config.registry.backend == "file"


def test_defaults_and_relative_catalogue(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[catalogue]\npath = "cat"\n')
    config = load_config(tmp_path / "c.toml")
    assert config.catalogue.path == tmp_path / "cat"
    assert config.upstream.timeout_ms == Config().upstream.timeout_ms
    with pytest.raises(AttributeError):
        config.server.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(("text", "needle"), [
    ('[server]\nport = "80"\n', "[server] port: expected an integer"),
    ("[server]\nport = 0\n", "[server] port: must be positive"),
    ("[server]\nprot = 80\n", "[server] prot: unknown key"),
    ("[serve]\nport = 80\n", "unknown section [serve]"),
    ('[log]\nformat = "xml"\n', "[log] format: expected one of"),
    ("[limits]\nmax_request_bytes = true\n", "[limits] max_request_bytes: expected an integer"),
    ('[admin]\ntoken_sha256 = "abc"\n', "[admin] token_sha256"),
    ("[server\n", "not valid TOML"),
    ("[tracing]\nsample_ratio = 1.5\n", "[tracing] sample_ratio: must be between 0 and 1"),
    ('[tracing]\nendpoint = "127.0.0.1:4318"\n', "[tracing] endpoint: expected an http:// or https:// URL"),
    ('[tracing]\nenabled = "yes"\n', "[tracing] enabled: expected true or false"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert needle in str(caught.value)


def test_tracing_is_off_by_default_and_its_endpoint_hidden(tmp_path: Path) -> None:
    config = parse_config({}, base_dir=tmp_path)
    assert config.tracing.enabled is False
    assert (config.tracing.endpoint, config.tracing.service_name, config.tracing.sample_ratio) == (
        "http://127.0.0.1:4318/v1/traces", "apihub", 1.0)
    endpoint = "https://user:pw-9e1f@collector.example/v1/traces"
    config = parse_config({"tracing": {"enabled": True, "endpoint": endpoint, "sample_ratio": 0}}, base_dir=tmp_path)
    assert config.tracing.sample_ratio == 0.0
    assert "pw-9e1f" not in repr(config)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_admin_token_hidden_and_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    digest = "a" * 64
    monkeypatch.setenv("APIHUB_ADMIN_TOKEN_SHA256", digest)
    config = parse_config({}, base_dir=tmp_path)
    assert config.admin.token_sha256 == digest
    assert digest not in repr(config)


@pytest.mark.parametrize(("text", "needle"), [
    ('[registry]\nbackend = "etcd"\n', "[registry] backend"),
    ('[upstream]\nclient = "curl"\n', "[upstream] client"),
    ('[catalogue]\nvalidator = "ajv"\n', "[catalogue] validator"),
])
def test_unknown_seam_names_stop_the_hub_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    # Names are checked by the seam that owns them, when the hub is built.
    path = tmp_path / "c.toml"
    path.write_text(text)
    config = load_config(path)
    with pytest.raises(ConfigError) as caught:
        create_app(config)
    assert needle in str(caught.value)
