"""Every bundle's metadata passes MONAI's schema and describes the default network's input and output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.bundle import ConfigParser, verify_metadata, verify_net_in_out

from tests.bundles.conftest import BUNDLES_DIR, GLAS_BUNDLE, KVASIR_BUNDLE
from tests.conftest import REFERENCE_DIR

OCT_BUNDLE = BUNDLES_DIR / "mlds_retinal_oct"
BUNDLES = pytest.mark.parametrize(
    "bundle", [GLAS_BUNDLE, KVASIR_BUNDLE, OCT_BUNDLE], ids=["glas", "kvasir", "mlds_retinal_oct"]
)
# the MaskSup bundles, whose input format and defaults are the MaskSup paper's
MASKSUP_BUNDLES = pytest.mark.parametrize("bundle", [GLAS_BUNDLE, KVASIR_BUNDLE], ids=["glas", "kvasir"])

# the top-level fields every model-zoo metadata.json carries (MONAI bundle specification)
REQUIRED_METADATA_FIELDS = (
    "schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version",
    "required_packages_version", "task", "description", "authors", "copyright", "network_data_format",
)


@pytest.fixture
def meta_schema() -> Path:
    """The copy of MONAI's metadata schema in ``../shared/reference``, or skip."""
    path = REFERENCE_DIR / "meta_schema_20240725.json"
    if not path.is_file():
        pytest.skip(
            f"{path} is absent (../shared/reference is not beside the project): verify_metadata needs a local copy "
            "of MONAI's meta_schema_20240725.json, which cannot be downloaded here"
        )
    return path


@BUNDLES
def test_metadata_has_bundle_specification_fields(bundle):
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    missing = [field for field in REQUIRED_METADATA_FIELDS if field not in meta]
    assert not missing, f"{bundle.name} metadata lacks {missing}"
    assert meta["version"] in meta["changelog"]
    assert {"inputs", "outputs"} <= set(meta["network_data_format"])


@BUNDLES
def test_metadata_passes_bundle_schema(bundle, meta_schema):
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(meta_schema))


def test_metadata_without_network_data_format_is_rejected(tmp_path, meta_schema):
    meta = json.loads((GLAS_BUNDLE / "configs" / "metadata.json").read_text())
    del meta["network_data_format"]
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="network_data_format"):
        verify_metadata(meta_file=str(broken), filepath=str(meta_schema))


@MASKSUP_BUNDLES
def test_metadata_states_paper_input_format(bundle):
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    assert (image["num_channels"], image["spatial_shape"], image["value_range"]) == (3, [224, 224], [-1, 1])
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 1


@MASKSUP_BUNDLES
def test_train_config_follows_paper_defaults(bundle):
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.json"))
    assert parser["image_size"] == [224, 224]
    assert (parser["epochs"], parser["batch_size"], parser["learning_rate"]) == (200, 8, 1e-4)
    assert parser["optimizer"]["amsgrad"] is True and parser["weight_decay"] == 1e-5
    assert parser["optimizer"]["lr"] == "@learning_rate" and parser["optimizer"]["_target_"] == "torch.optim.Adam"
    assert parser["masking"] == "high" and parser["loss_weights"] == [1.0, 1.0, 1.0]
    assert parser["network_def"]["_target_"] == "monai_masksup.networks.LeViTUNet"
    assert parser["network_def"]["variant"] == "384"
    assert parser["paper_protocol"] is False


@pytest.mark.slow
@BUNDLES
def test_default_network_matches_metadata(bundle):
    # one forward pass of LeViT-UNet-384 on a 224x224 input (a few seconds on a CPU)
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "train.json"),
        device="cpu",
    )
