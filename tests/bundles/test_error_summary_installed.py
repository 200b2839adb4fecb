"""Every bundle workflow installs the data error summary first in its ``initialize`` (docs/architecture.md)."""

from __future__ import annotations

import json

import pytest

from tests.bundles.conftest import GLAS_BUNDLE, KVASIR_BUNDLE

INSTALL = "$monai_masksup.data.install_data_error_summary()"
WORKFLOW_CONFIGS = [
    config
    for bundle in (GLAS_BUNDLE, KVASIR_BUNDLE)
    for config in sorted((bundle / "configs").glob("*.json"))
    if "initialize" in json.loads(config.read_text())
]


def test_the_bundles_have_workflow_configs():
    names = {f"{c.parent.parent.name}/{c.name}" for c in WORKFLOW_CONFIGS}
    assert {"masksup_glas/train.json", "masksup_kvasir/train.json", "masksup_glas/pretrain_maskcontrast.json",
            "masksup_kvasir/pretrain_maskcontrast.json"} <= names


@pytest.mark.parametrize("config", WORKFLOW_CONFIGS, ids=lambda c: f"{c.parent.parent.name}/{c.name}")
def test_initialize_installs_the_error_summary_first(config):
    assert json.loads(config.read_text())["initialize"][0] == INSTALL
