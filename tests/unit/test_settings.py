"""Settings: one frozen object, read once, with one clear line for every bad configuration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from annotator_core.errors import ConfigError
from annotator_core.settings import Settings, load_settings, setting_help

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_are_the_embedded_default(monkeypatch) -> None:
    monkeypatch.delenv("VA_CONFIG", raising=False)
    s = load_settings()
    assert s.data_dir == Path("va-data")
    assert s.resolved_lancedb_uri == "va-data/lancedb"
    assert s.resolved_database_url == "sqlite:///va-data/annotations.db"
    with pytest.raises(Exception, match="frozen"):
        s.port = 1  # type: ignore[misc]


def test_environment_beats_config_file_beats_defaults(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "va.toml"
    cfg.write_text('[va]\nport = 9000\nfeed_size = 20\nstorage_options = {aws_region = "eu-west-1"}\n')
    monkeypatch.setenv("VA_PORT", "9100")
    s = load_settings(cfg)
    assert (s.port, s.feed_size, s.storage_options) == (9100, 20, {"aws_region": "eu-west-1"})


def test_unknown_environment_setting_is_named(monkeypatch) -> None:
    monkeypatch.setenv("VA_FEEDSIZE", "3")
    with pytest.raises(ConfigError, match="unknown setting VA_FEEDSIZE"):
        load_settings()


def test_unknown_config_key_is_named(tmp_path) -> None:
    cfg = tmp_path / "va.toml"
    cfg.write_text("[va]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'prot' in .*va.toml"):
        load_settings(cfg)


def test_bad_value_names_the_setting_and_the_value(monkeypatch) -> None:
    monkeypatch.setenv("VA_PORT", "eighty")
    with pytest.raises(ConfigError, match=r"setting VA_PORT is invalid: .* \(got 'eighty'\)"):
        load_settings()


def test_unwritable_data_folder_is_one_clear_line(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    s = Settings(data_dir=blocker / "sub")
    with pytest.raises(ConfigError, match=r"VA_DATA_DIR=.*sub is not writable .*set VA_DATA_DIR"):
        s.ensure_data_dir()


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    missing = [env for env, _default, _help in setting_help() if not re.search(rf"`{env}`", text)]
    assert not missing, f"README.md does not document {missing}; run `va status --settings` for their help"


def test_every_setting_has_help() -> None:
    assert all(help_text for _env, _default, help_text in setting_help())
