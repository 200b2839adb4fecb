"""Which bundles the MONAI Label app serves, with which configs and label names (no MONAI Label needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.apps.conftest import APP_DIR, app_module
from tests.conftest import PROJECT_ROOT

catalog = app_module("bundle_catalog")


def _bundle(root: Path, name: str, channel_def: dict, semisup: bool = False) -> Path:
    configs = root / name / "configs"
    configs.mkdir(parents=True)
    metadata = {"network_data_format": {"outputs": {"pred": {"channel_def": channel_def}}}}
    (configs / "metadata.json").write_text(json.dumps(metadata))
    for config in ("inference.json", "train.json", "demo.json") + (("train_semisup.json",) if semisup else ()):
        (configs / config).write_text("{}")
    return root / name


def test_project_bundles_publish_gland_and_polyp_as_label_1():
    bundles = catalog.find_bundles(catalog.default_bundles_dir(APP_DIR))
    assert {"masksup_glas", "masksup_kvasir"} <= set(bundles)
    assert catalog.published_labels(bundles["masksup_glas"].path / "configs" / "metadata.json") == {"gland": 1}
    assert catalog.published_labels(bundles["masksup_kvasir"].path / "configs" / "metadata.json") == {"polyp": 1}


def test_default_bundles_dir_is_the_project_bundles_folder():
    assert catalog.default_bundles_dir(APP_DIR) == PROJECT_ROOT / "bundles"


def test_multi_channel_outputs_publish_channel_indices_without_background():
    metadata = {"network_data_format": {"outputs": {"pred": {"channel_def": {"0": "background", "1": "IRF", "2": "SRF (fluid)"}}}}}
    assert catalog.published_labels(metadata) == {"irf": 1, "srf": 2}


def test_metadata_without_channel_def_names_the_file(tmp_path):
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps({"network_data_format": {"outputs": {}}}))
    with pytest.raises(ValueError, match="metadata.json.*channel_def"):
        catalog.published_labels(path)


def test_named_models_and_extra_configs_select_bundles_and_files(tmp_path):
    _bundle(tmp_path, "a", {"0": "thing"})
    _bundle(tmp_path, "b", {"0": "other"}, semisup=True)
    served = catalog.find_bundles(tmp_path, "b", ["demo.json"])
    assert list(served) == ["b"]
    b = served["b"]
    configs = tmp_path.resolve() / "b" / "configs"
    assert b.config_files("inference.json") == [str(configs / "inference.json"), str(configs / "demo.json")]
    assert b.has_semisup_config
    assert b.train_config_files(semi_supervised=True) == [
        str(configs / "train.json"),
        str(configs / "train_semisup.json"),
        str(configs / "demo.json"),
    ]
    assert b.train_config_files(semi_supervised=False) == [str(configs / "train.json"), str(configs / "demo.json")]
    assert not catalog.find_bundles(tmp_path, "all")["a"].has_semisup_config


def test_work_dir_is_outside_models(tmp_path):
    bundle = catalog.find_bundles(_bundle(tmp_path, "a", {"0": "x"}).parent)["a"]
    assert bundle.work_dir.parent.name == "eval" and "models" not in bundle.work_dir.parts


@pytest.mark.parametrize(
    "models, configs, message",
    [
        ("a,zzz", [], "zzz not found in .*; available: a"),
        ("all", ["missing.json"], "missing.json .*does not exist in bundle a"),
    ],
)
def test_unknown_bundle_or_config_is_an_error_naming_it(tmp_path, models, configs, message):
    _bundle(tmp_path, "a", {"0": "x"})
    with pytest.raises(FileNotFoundError, match=message):
        catalog.find_bundles(tmp_path, models, configs)


def test_missing_or_empty_bundles_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        catalog.find_bundles(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="holds no bundle"):
        catalog.find_bundles(tmp_path)


def test_split_names_accepts_strings_lists_and_nothing():
    assert catalog.split_names(" a, b ,,") == ["a", "b"]
    assert catalog.split_names(["a", " "]) == ["a"]
    assert catalog.split_names(None) == []


def _metadata(spatial_shape: list[int] | None) -> dict:
    inputs = {"image": {"spatial_shape": spatial_shape} if spatial_shape else {}}
    return {"network_data_format": {"inputs": inputs}}


def test_served_dimension_is_the_input_spatial_shape_length_as_monai_label_reads_it():
    assert catalog.served_dimension(_metadata([224, 224]), {"inferer": {"_target_": "SimpleInferer"}}) == 2
    assert catalog.served_dimension(_metadata([96, 96, 96]), {}) == 3
    # MONAI Label's BundleInferTask takes 3 when the metadata has no spatial shape
    assert catalog.served_dimension(_metadata(None), {}) == 3


def test_a_2d_network_run_through_a_slice_inferer_is_served_as_a_volume_bundle():
    slice_inferer = {"_target_": "SliceInferer", "spatial_dim": 2, "roi_size": [-1, -1]}
    assert catalog.served_dimension(_metadata([512, 496]), {"inferer": slice_inferer}) == 3
    helper = {"_target_": "monai_masksup.data.oct_slice_inference.bscan_slice_inferer"}
    assert catalog.served_dimension(_metadata([512, 496]), {"inferer": helper}) == 3


def test_project_bundles_are_served_as_2d_and_an_extra_config_can_change_the_inferer(tmp_path):
    bundles = catalog.find_bundles(catalog.default_bundles_dir(APP_DIR))
    assert bundles["masksup_glas"].dimension == 2 and bundles["masksup_kvasir"].dimension == 2
    bundle = _bundle(tmp_path, "oct_like", {"0": "background", "1": "fluid"})
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    metadata["network_data_format"]["inputs"] = {"image": {"spatial_shape": [64, 64]}}
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata))
    (bundle / "configs" / "slices.json").write_text(json.dumps({"inferer": {"_target_": "SliceInferer"}}))
    assert catalog.find_bundles(tmp_path)["oct_like"].dimension == 2
    assert catalog.find_bundles(tmp_path, extra_configs=["slices.json"])["oct_like"].dimension == 3


def test_the_oct_bundle_publishes_its_fluid_classes_by_channel():
    bundle = catalog.find_bundles(catalog.default_bundles_dir(APP_DIR), "mlds_retinal_oct")["mlds_retinal_oct"]
    labels = catalog.published_labels(bundle.path / "configs" / "metadata.json")
    assert labels == {"intraretinal fluid": 1, "subretinal fluid": 2, "pigment epithelial detachment": 3}


def test_a_bundle_with_input_kinds_is_served_once_per_kind():
    assert catalog.infer_task_names("oct", {"input_kind": "$@inputs['kind']"}) == {
        "oct": "volumes",
        "oct_bscans": "bscans",
    }
    assert catalog.infer_task_names("masksup_glas", {"inferer": {}}) == {"masksup_glas": None}


def test_the_input_kind_sets_the_served_dimension_over_the_inferer():
    # mlds_retinal_oct: a 2D network, the inferer chosen by an expression on the kind
    inference = {"inferer": "$@bscan#inferer if @input_kind == 'bscans' else @volume#inferer"}
    assert catalog.served_dimension(_metadata([512, 512]), {**inference, "input_kind": "volumes"}) == 3
    assert catalog.served_dimension(_metadata([512, 512]), {**inference, "input_kind": "bscans"}) == 2
    bundles = catalog.find_bundles(catalog.default_bundles_dir(APP_DIR))
    # the task named after the bundle serves volumes
    assert bundles["mlds_retinal_oct"].dimension == 3


def test_only_the_oct_bundle_takes_saved_labels_as_a_bscan_split():
    how = catalog.bscan_split_training("mlds_retinal_oct")
    assert how.split_key == "split" and how.fixed == {"layout": "retouch", "mode": "supervised"}
    configs = catalog.default_bundles_dir(APP_DIR) / "mlds_retinal_oct" / "configs"
    train = json.loads((configs / "train.json").read_text())
    # the keys exist in the bundle's train.json, and the validation interval follows the epochs
    assert {how.split_key, how.epochs_key, *how.fixed} <= set(train)
    assert train["val_interval"] == f"@{how.epochs_key}"
    assert catalog.bscan_split_training("masksup_glas") is None


def test_served_labels_follow_the_configured_number_of_classes():
    metadata = catalog.default_bundles_dir(APP_DIR) / "mlds_retinal_oct" / "configs" / "metadata.json"
    fluids = {"intraretinal fluid": 1, "subretinal fluid": 2, "pigment epithelial detachment": 3}
    assert catalog.served_labels("mlds_retinal_oct", metadata, 4) == fluids
    assert catalog.served_labels("mlds_retinal_oct", metadata, None) == fluids
    # a model trained with --layout duke, served with num_classes 2
    assert catalog.served_labels("mlds_retinal_oct", metadata, 2) == {"fluid": 1}
    with pytest.raises(ValueError, match="mlds_retinal_oct .*num_classes=3.* 4 channels"):
        catalog.served_labels("mlds_retinal_oct", metadata, 3)
    glas = catalog.default_bundles_dir(APP_DIR) / "masksup_glas" / "configs" / "metadata.json"
    assert catalog.served_labels("masksup_glas", glas) == {"gland": 1}
