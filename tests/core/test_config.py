"""The configuration file: every key validated, every error naming the key and the file."""
from pathlib import Path

import pytest

from strongroom.core.config import load_settings, locate_config, parse_settings
from strongroom.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strongroom.toml"
    path.write_text(text)
    return path


def test_example_config_in_etc_is_valid_and_documents_every_key():
    settings = load_settings(REPO / "etc" / "strongroom.toml")
    assert settings.database.url.startswith("sqlite:///")
    text = (REPO / "etc" / "strongroom.toml").read_text()
    documented = {line.split("=")[0].strip() for line in text.splitlines()
                  if "=" in line and not line.lstrip().startswith("#")}
    documented |= {line.lstrip("# ").split("=")[0].strip() for line in text.splitlines()
                   if line.startswith("# ") and "=" in line}
    sections = (settings, settings.database, settings.keys, settings.auth, settings.auth.argon2,
                settings.daemon, settings.metrics, settings.audit, settings.notify, settings.backup,
                settings.backup.retention, settings.sync, settings.files)
    nested = {"source", "database", "keys", "auth", "argon2", "daemon", "metrics", "audit", "schedules",
              "notify", "email", "backup", "retention", "sync", "tables", "peers", "files", "rate_limits"}
    assert "[auth.rate_limits]" in text
    for section in sections:
        for name in type(section).model_fields:
            if name not in nested:
                assert name in documented, f"etc/strongroom.toml does not document {name}"
    from strongroom.core.notify import EmailSettings
    for name in EmailSettings.model_fields:
        assert name in documented, f"etc/strongroom.toml does not document notify.email.{name}"
    from strongroom.core.sync.settings import SyncPeerSettings, SyncTableSettings
    for model, where in ((SyncTableSettings, "sync.tables.NAME"), (SyncPeerSettings, "sync.peers.NAME")):
        for name in model.model_fields:
            assert name in documented, f"etc/strongroom.toml does not document {where}.{name}"
    assert "[sync.tables." in text and "[sync.peers." in text


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    settings = load_settings(write(tmp_path, 'data_dir = "."\n[database]\nurl = "sqlite:///db.sqlite"\n'
                                             '[keys]\nkek_file = "k.key"\n'))
    assert settings.data_dir == tmp_path.resolve()
    assert settings.database.url == f"sqlite:///{tmp_path.resolve()}/db.sqlite"
    assert settings.keys.kek_file == tmp_path.resolve() / "k.key"


@pytest.mark.parametrize("body, key", [
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[auth]\nlockout_minutes = "ten"\n', "auth.lockout_minutes"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[auth]\nmax_failed_logins = 0\n', "auth.max_failed_logins"),
    ('data_dir = "."\n[database]\nurl = "mysql://x"\n', "database.url"),
    ('data_dir = "."\n', "database"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\nsurprise = 1\n', "database.surprise"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[auth.argon2]\nmemory_kib = -1\n', "auth.argon2.memory_kib"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[schedules]\nbackup = "every day"\n', "schedules"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[schedules]\nteleport = "0 2 * * *"\n', "schedules"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[daemon]\ntcp_endpoint = "udp://x"\n', "daemon.tcp_endpoint"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[notify]\ndeadman_url = "ftp://x"\n', "notify.deadman_url"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[backup]\nschedule = "0 2 * * *"\n', "backup.schedule"),
    ('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[backup.configurations.offsite]\nschedule = "nightly"\n',
     "backup.configurations.offsite.schedule"),
])
def test_bad_value_error_names_the_key_and_the_file(tmp_path, body, key):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert key in str(err.value)
    assert str(path) in str(err.value)
    assert err.value.exit_code == 2


def test_invalid_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, 'data_dir = "."\n[database\nurl = 1\n')
    with pytest.raises(ConfigError, match="invalid TOML.*line 2"):
        load_settings(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_locate_prefers_config_then_data_dir_then_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("STRONGROOM_CONFIG", raising=False)
    monkeypatch.setenv("STRONGROOM_DATA_DIR", str(tmp_path / "env"))
    assert locate_config("a.toml", "dir") == Path("a.toml")
    assert locate_config(None, "dir") == Path("dir") / "strongroom.toml"
    assert locate_config(None, None) == tmp_path / "env" / "strongroom.toml"
    monkeypatch.delenv("STRONGROOM_DATA_DIR")
    with pytest.raises(ConfigError, match="--data-dir"):
        locate_config(None, None)


def test_error_message_does_not_echo_long_secret_like_sections(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_settings({"data_dir": ".", "database": {"url": "sqlite:///x"}, "keys": "not-a-table"})
    assert "keys" in str(err.value)


def test_a_bad_schedule_is_one_line_naming_the_key_and_the_field(tmp_path):
    path = write(tmp_path, 'data_dir = "."\n[database]\nurl = "sqlite:///x"\n[schedules]\nbackup = "0 5 * * 9"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert "schedules" in message and "backup" in message and "weekday field '9'" in message
    assert "\n" not in message and "Traceback" not in message
