"""Boolean bundle switches read the same from JSON and from command-line words."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from monai_masksup.config_flags import parse_flag
from tests.conftest import PROJECT_ROOT


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("false", False), ("False", False),
                                             (" TRUE ", True), ("no", False), ("1", True), (0, False)])
def test_words_and_bools_read_as_switches(value, expected):
    assert parse_flag(value, "amp") is expected


def test_unknown_word_names_the_setting():
    with pytest.raises(ValueError, match="`amp` must be true or false, got 'maybe'"):
        parse_flag("maybe", "amp")


@pytest.mark.parametrize("bundle", ["masksup_glas", "masksup_kvasir"])
@pytest.mark.parametrize("word, expected", [("false", False), ("true", True)])
def test_command_line_word_switches_trainer_amp(bundle, word, expected):
    # `monai.bundle run --amp false` hands the config the string "false", which bool() would read as True
    parser = ConfigParser()
    parser.read_config(str(PROJECT_ROOT / "bundles" / bundle / "configs" / "train.json"))
    parser["amp"] = word
    assert parser.get_parsed_content("train#trainer#amp") is expected
    assert parser.get_parsed_content("validate#evaluator#amp") is expected


@pytest.mark.parametrize("bundle", ["masksup_glas", "masksup_kvasir"])
@pytest.mark.parametrize("config", ["train.json", "inference.json"])
def test_amp_is_read_once_and_then_referenced(bundle, config):
    text = (PROJECT_ROOT / "bundles" / bundle / "configs" / config).read_text()
    assert text.count("parse_flag(@amp,") == 1
    parser = ConfigParser()
    parser.read_config(str(PROJECT_ROOT / "bundles" / bundle / "configs" / config))
    parser["amp"] = "no"
    assert parser.get_parsed_content("amp_enabled") is False
