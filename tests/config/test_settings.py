"""Settings: defaults, TOML, environment precedence, errors that name the key, masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentiflow.config.commands import config_group
from sentiflow.config.errors import ConfigError
from sentiflow.config.settings import MASK, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sentiflow.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_env(tmp_path: Path) -> None:
    s = load_settings(None, {"SENTIFLOW_HOME": str(tmp_path)})
    assert s.api.port == 8080
    assert (s.api.max_text_chars, s.api.max_batch_items) == (5000, 1000)
    assert (s.classifier.max_batch, s.classifier.max_wait_ms) == (64, 0.0)
    assert s.classifier.devices == "auto"
    assert s.classifier.model == "default"
    assert s.router.threshold == 0.75
    assert s.api.api_keys == []
    assert s.webhook.secret is None
    assert s.node.home == tmp_path
    # Relative embedded store URLs are resolved under node.home.
    assert s.storage.results_url == f"sqlite:///{tmp_path}/results.db"
    assert s.storage.trends_url == f"chdb:///{tmp_path}/trends"


def test_toml_file_sets_values(tmp_path: Path) -> None:
    path = write(tmp_path, """
[node]
name = "gpu-7"
home = "/srv/sentiflow"
[api]
port = 9000
api_keys = ["k-0123456789"]
[router]
threshold = 0.6
per_language = { de = 0.7, ja = 0.5 }
[classifier]
devices = ["cuda:0", "cuda:1"]
[storage]
results_url = "sqlite:////data/r.db"
""")
    s = load_settings(path, {})
    assert (s.node.name, s.api.port, s.router.threshold) == ("gpu-7", 9000, 0.6)
    assert s.router.threshold_for("de") == 0.7
    assert s.router.threshold_for("en") == 0.6
    assert s.classifier.devices == ["cuda:0", "cuda:1"]
    assert s.storage.results_url == "sqlite:////data/r.db"  # absolute: unchanged
    assert s.storage.trends_url == "chdb:////srv/sentiflow/trends"
    assert s.api.api_keys[0].get_secret_value() == "k-0123456789"


def test_env_overrides_file_and_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[router]\nthreshold = 0.6\n[api]\nport = 9000\n")
    env = {"SENTIFLOW_CONFIG": str(path), "SENTIFLOW_ROUTER__THRESHOLD": "0.8",
           "sentiflow_api__host": "0.0.0.0",  # case-insensitive
           "SENTIFLOW_ROUTER__PER_LANGUAGE": '{"fr": 0.9}'}
    s = load_settings(None, env)
    assert s.router.threshold == 0.8  # env beats file
    assert s.api.port == 9000  # file beats default
    assert s.api.host == "0.0.0.0"
    assert s.router.per_language == {"fr": 0.9}
    # An explicit path wins over SENTIFLOW_CONFIG.
    other = tmp_path / "other.toml"
    other.write_text("")
    assert load_settings(other, env).api.port == 8080


def test_node_home_env_alias_and_explicit_key_precedence(tmp_path: Path) -> None:
    s = load_settings(None, {"SENTIFLOW_HOME": "/a", "SENTIFLOW_DATA_DIR": "/d"})
    assert (s.node.home, s.node.data_dir) == (Path("/a"), Path("/d"))
    s = load_settings(None, {"SENTIFLOW_HOME": "/a", "SENTIFLOW_NODE__HOME": "/b"})
    assert s.node.home == Path("/b")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SENTIFLOW_ROUTER__THRESHOLD": "1.5"},
         "router.threshold: must be in [0, 1] (got '1.5') [from SENTIFLOW_ROUTER__THRESHOLD]"),
        ({"SENTIFLOW_ROUTER__THRESHOLD": "nan"}, "router.threshold: must be in [0, 1]"),
        ({"SENTIFLOW_API__PORT": "http"}, "api.port: must be an integer"),
        ({"SENTIFLOW_API__PORT": "70000"}, "api.port: must be <= 65535"),
        ({"SENTIFLOW_CLASSIFIER__MAX_BATCH": "0"}, "classifier.max_batch: must be >= 1"),
        ({"SENTIFLOW_CLASSIFIER__DEVICES": '["tpu"]'}, "classifier.devices: unknown device"),
        ({"SENTIFLOW_ROUTER__PER_LANGUAGE": '{"English": 0.5}'},
         "router.per_language: 'English' is not a lower-case ISO-639-1 code"),
        ({"SENTIFLOW_STORAGE__RESULTS_URL": "mysql://x"}, "storage.results_url: URL must start"),
        ({"SENTIFLOW_LOGGING__LEVEL": "loud"}, "logging.level: must be one of"),
        ({"SENTIFLOW_API__NOPE": "1"}, "api.nope: unknown key"),
        ({"SENTIFLOW_WEBHOOK__BACKOFF_MAX_S": "0.1"},
         "webhook: backoff_max_s must be >= backoff_initial_s"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env)
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nport = 0\n[router]\nthreshold = -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert [p.split(":")[0] for p in info.value.problems] == ["api.port", "router.threshold"]
    assert str(path) in str(info.value)


def test_unknown_keys_in_toml_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routr: unknown key"):
        load_settings(write(tmp_path, "[routr]\nthreshold = 0.8\n"), {})
    with pytest.raises(ConfigError, match=r"router.treshold: unknown key"):
        load_settings(write(tmp_path, "[router]\ntreshold = 0.8\n"), {})


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", {})
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_settings(write(tmp_path, "[api\nport = 1\n"), {})


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"SENTIFLOW_API__API_KEYS": '["short"]'})
    assert "short" not in str(info.value).replace("at least 8", "")
    assert info.value.problems[0].startswith("api.api_keys: every API key")


def test_masked_dump_hides_secrets() -> None:
    s = load_settings(None, {"SENTIFLOW_API__API_KEYS": '["key-aaaaaaaa", "key-bbbbbbbb"]',
                             "SENTIFLOW_WEBHOOK__SECRET": "whsec-topsecret"})
    dumped = s.masked_dump()
    text = json.dumps(dumped)
    assert "key-aaaaaaaa" not in text
    assert "topsecret" not in text
    assert dumped["api"]["api_keys"] == [MASK, MASK]
    assert dumped["webhook"]["secret"] == MASK
    assert dumped["router"]["threshold"] == 0.75
    assert s.webhook.secret is not None
    assert s.webhook.secret.get_secret_value() == "whsec-topsecret"


def test_settings_are_frozen() -> None:
    s = load_settings(None, {})
    with pytest.raises(ValueError, match="frozen"):
        s.router.threshold = 0.1


def test_config_show_command_prints_masked_json(tmp_path: Path) -> None:
    path = write(tmp_path, '[webhook]\nsecret = "whsec-hidden"\n[api]\nport = 8181\n')
    result = CliRunner().invoke(config_group, ["show", "--config", str(path)], env={})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["api"]["port"] == 8181
    assert "whsec-hidden" not in result.output
    bad = CliRunner().invoke(config_group, ["show"],
                             env={"SENTIFLOW_ROUTER__THRESHOLD": "2"})
    assert bad.exit_code == 2
    assert "router.threshold: must be in [0, 1]" in bad.output
