import json

import pytest

from appliance.store import ApplianceSettings, Store, StoreCorruptError, ValidationError


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path)
    yield store
    store.close()


def test_a_fresh_appliance_has_no_password_and_the_default_retention(store) -> None:
    assert store.settings.snapshot() == ApplianceSettings()
    assert store.settings.snapshot().admin_password is None
    assert store.settings.snapshot().call_log_retention_days == 365


def test_settings_are_updated_together_and_survive_a_restart(tmp_path, store) -> None:
    sid = "AC" + "0123456789abcdef" * 2
    store.settings.update(
        admin_password="scrypt$16384$8$1$c2FsdA==$aGFzaA==",
        appliance_name="Grandma's line",
        api_account_sid=sid,
        api_auth_token="f" * 32,
        session_secret="s" * 32,
        call_log_retention_days=30,
        line_voice_urls={"gsm0": "rooms", "gsm1": "file:rules/mine.xml"},
    )
    store.settings.update(appliance_name="Family line")
    again = Store(tmp_path).settings.snapshot()
    assert again == ApplianceSettings(
        appliance_name="Family line",
        admin_password="scrypt$16384$8$1$c2FsdA==$aGFzaA==",
        api_account_sid=sid,
        api_auth_token="f" * 32,
        session_secret="s" * 32,
        call_log_retention_days=30,
        line_voice_urls={"gsm0": "rooms", "gsm1": "file:rules/mine.xml"},
    )


def test_none_clears_an_optional_setting(store) -> None:
    store.settings.update(appliance_name="x")
    assert store.settings.update(appliance_name=None).appliance_name is None


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"apliance_name": "x"}, "apliance_name", "unknown setting; did you mean appliance_name?"),
        ({"colour": "red"}, "colour", "unknown setting"),
        ({"appliance_name": ""}, "appliance_name", "must be 1 to 64 characters"),
        ({"appliance_name": 5}, "appliance_name", "must be text"),
        ({"appliance_name": "a\x00b"}, "appliance_name", "control characters"),
        ({"api_account_sid": "AC123"}, "api_account_sid", "AC followed by 32"),
        ({"api_auth_token": "short"}, "api_auth_token", "16 to 256 characters"),
        ({"session_secret": "short"}, "session_secret", "16 to 1024 characters"),
        ({"call_log_retention_days": 0}, "call_log_retention_days", "from 1 to 3650"),
        ({"call_log_retention_days": "30"}, "call_log_retention_days", "whole number"),
        ({"call_log_retention_days": None}, "call_log_retention_days", "whole number"),
        ({"line_voice_urls": {"gsm0": ""}}, "line_voice_urls", "must be non-empty"),
        ({"line_voice_urls": ["gsm0"]}, "line_voice_urls", "must map line names"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(store, changes, field, message) -> None:
    with pytest.raises(ValidationError) as caught:
        store.settings.update(**{"session_secret": "a valid one, kept out too", **changes})
    assert message in caught.value.errors[field]
    assert store.settings.snapshot() == ApplianceSettings()


def test_a_hand_edited_bad_value_is_reported_with_the_file(tmp_path) -> None:
    Store(tmp_path).settings.update(call_log_retention_days=30)
    path = tmp_path / "settings.json"
    data = json.loads(path.read_text())
    data["settings"]["1"]["call_log_retention_days"] = -1
    path.write_text(json.dumps(data))
    with pytest.raises(StoreCorruptError, match=r"settings\.json.*call_log_retention_days"):
        Store(tmp_path).settings.snapshot()


def test_settings_from_a_newer_version_are_kept_but_not_shown(tmp_path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"settings": {"1": {"future_key": 1, "appliance_name": "x"}}}))
    store = Store(tmp_path)
    assert store.settings.snapshot() == ApplianceSettings(appliance_name="x")
    store.settings.update(appliance_name="y")
    assert json.loads(path.read_text())["settings"]["1"]["future_key"] == 1


def test_settings_read_and_written_key_by_key_as_the_web_layer_does(tmp_path, store) -> None:
    # appliance.web.settings.SettingsStore: get(key, default=None) and set(key, value), with
    # the keys "admin_password" (a hash) and "appliance_name".
    assert store.settings.get("admin_password") is None
    assert store.settings.get("appliance_name", "Home conference line") == "Home conference line"
    assert store.settings.get("call_log_retention_days") == 365
    store.settings.set("admin_password", "scrypt$16384$8$1$c2FsdA==$aGFzaA==")
    store.settings.set("appliance_name", "Family line")
    again = Store(tmp_path).settings
    assert again.get("admin_password") == "scrypt$16384$8$1$c2FsdA==$aGFzaA=="
    assert again.get("appliance_name", "Home conference line") == "Family line"
    with pytest.raises(ValidationError, match="did you mean admin_password"):
        store.settings.get("admin_pasword")
    with pytest.raises(ValidationError, match="appliance_name: must be 1 to 64"):
        store.settings.set("appliance_name", "x" * 65)
