"""hardware/99-appliance-modems.rules: well-formed, and covering every USB modem family."""

import re
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "hardware" / "99-appliance-modems.rules"
# KEY{attr}=="value", KEY+="value", KEY="value", KEY!="value": udev's rule grammar.
PAIR = re.compile(r'^[A-Z_]+(\{[A-Za-z_]+\})?(==|!=|\+=|=)"[^"]*"$')


def rule_lines() -> list[str]:
    text = RULES.read_text()
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_every_rule_is_a_list_of_udev_key_value_pairs() -> None:
    for line in rule_lines():
        for pair in line.split(", "):
            assert PAIR.match(pair), f"not a udev key-value pair: {pair!r} in {line!r}"


def test_each_usb_modem_family_is_named_and_kept_from_modemmanager() -> None:
    text = RULES.read_text()
    for vendor, family in [("1e0e", "simcom"), ("2c7c", "quectel"), ("12d1", "huawei"),
                           ("0baf", "v253")]:
        assert f'ATTRS{{idVendor}}=="{vendor}"' in text
        assert f"appliance/{family}-" in text
    ignores = [line for line in rule_lines() if 'ENV{ID_MM_DEVICE_IGNORE}="1"' in line]
    assert len(ignores) == 5


def test_the_goto_has_its_label() -> None:
    gotos = set(re.findall(r'GOTO="([^"]+)"', RULES.read_text()))
    labels = set(re.findall(r'LABEL="([^"]+)"', RULES.read_text()))
    assert gotos <= labels
