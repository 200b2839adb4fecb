"""The retinal-OCT bundle: its generated default runs end to end, every mode trains, Mean-Taught resumes its teacher,
a given missing folder is an error, and the real Duke subset trains through the ``duke`` layout."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from PIL import Image

from monai_masksup.data import (
    DataFileError,
    DatasetLayoutError,
    synthetic_oct_volume,
    write_bscan_pngs,
    write_metaimage_volume,
)
from monai_masksup.engines.mlds_trainer import MLDS_MODES
from monai_masksup.data import RETOUCH_CLASSES
from tests.bundles.conftest import BUNDLES_DIR, bundle_run, cli_args, configs, exception_chain, subprocess_env
from tests.conftest import PROJECT_ROOT

OCT_BUNDLE = BUNDLES_DIR / "mlds_retinal_oct"
DUKE_DIR = PROJECT_ROOT.parent / "shared" / "data" / "duke_oct"
DEMO_NOTICE = (
    "no data set configured: {action} on the generated demo set in {folder}; pass --dataset_dir to use RETOUCH, "
    "Duke DME or your own OCT data"
)


@pytest.fixture(scope="module")
def demo_data_dir(tmp_path_factory) -> Path:
    """One generated demo set shared by the runs of this module (each run has its own bundle root)."""
    return tmp_path_factory.mktemp("oct_demo")


@pytest.fixture
def demo_log(caplog, monkeypatch):
    """The demo-data log records; the logger is re-enabled in case a bundle run's ``fileConfig`` disabled it."""
    monkeypatch.setattr(logging.getLogger("monai_masksup.data.demo_data"), "disabled", False)
    caplog.set_level(logging.WARNING, logger="monai_masksup.data.demo_data")
    return caplog


def _train(bundle_root: Path, demo_data_dir: Path, **overrides) -> None:
    overrides = {"bundle_root": str(bundle_root), "demo_data_dir": str(demo_data_dir), "epochs": 1, **overrides}
    bundle_run(OCT_BUNDLE, ["train.json", "demo.json"], **overrides)


def test_train_json_without_data_option_generates_metaimage_volumes_and_says_so(tmp_path, demo_log):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(configs(OCT_BUNDLE, "train.json"))
    parser["bundle_root"] = str(tmp_path)
    split = parser.get_parsed_content("split")
    folder = tmp_path / "eval" / "demo_data" / "retouch_synthetic"
    assert [r.getMessage() for r in demo_log.records] == [DEMO_NOTICE.format(action="training", folder=folder)]
    # 3 vendors x 2 volumes, real MetaImage pairs read through the ITK path
    volumes = sorted(p.parent.relative_to(folder).as_posix() for p in folder.rglob("oct.mhd"))
    assert len(volumes) == 6 and all((folder / v / "oct.raw").is_file() for v in volumes)
    first = parser.get_parsed_content("train#dataset")[0]  # loaded by the ITK reader, cut into a B-scan
    assert first["image"].meta["filename_or_obj"].endswith("oct.mhd") and tuple(first["image"].shape) == (1, 512, 512)
    # 6 volumes of 8 B-scans; the default 24 pixel-labelled B-scans come from the training subjects only
    assert len(split["pixel"]) == 24
    train_subjects = {item["subject"] for part in ("pixel", "image", "unlabelled") for item in split[part]}
    assert train_subjects.isdisjoint({item["subject"] for item in split["test"]})
    assert parser.get_parsed_content("num_classes") == 4


@pytest.mark.slow
def test_command_without_data_option_says_so_before_the_run(tmp_path):
    # `python -m monai.bundle run --config_file .../train.json` (+ the demo overlay), from another folder
    cmd = [sys.executable, "-m", "monai.bundle", "run"]
    cmd += ["--config_file", str(configs(OCT_BUNDLE, "train.json", "demo.json"))]
    cmd += ["--logging_file", str(OCT_BUNDLE / "configs" / "logging.conf"), "--epochs", "1"]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    log_lines = [line for line in proc.stdout.splitlines() if " - " in line]
    folder = tmp_path / "eval" / "demo_data" / "retouch_synthetic"
    # only MONAI's logging set-up line precedes the notice
    assert any(DEMO_NOTICE.format(action="training", folder=folder) in line for line in log_lines[:2]), log_lines[:5]
    assert (tmp_path / "models" / "model.pt").is_file()


def test_metadata_describes_the_default_network_and_the_retouch_classes():
    from monai.bundle import ConfigParser

    meta = json.loads((OCT_BUNDLE / "configs" / "metadata.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    pred = meta["network_data_format"]["outputs"]["pred"]
    parser = ConfigParser()
    parser.read_config(configs(OCT_BUNDLE, "train.json"))
    assert (image["num_channels"], image["spatial_shape"], image["value_range"]) == (1, parser["image_size"], [0, 1])
    assert pred["num_channels"] == parser.get_parsed_content("num_classes") == len(RETOUCH_CLASSES)
    assert [name.split(" (")[-1].rstrip(")") for name in list(pred["channel_def"].values())[1:]] == list(
        RETOUCH_CLASSES[1:]
    )
    assert parser["n_pixel_labelled"] == 24 and parser["mode"] == "supervised"
    assert parser["network_def"]["_target_"] == "monai_masksup.networks.HierarchicalUNet"


def test_validation_leaves_ignored_pixels_out_of_the_metrics():
    from monai.bundle import ConfigParser
    from monai.metrics import MeanIoU

    parser = ConfigParser()
    parser.read_config(configs(OCT_BUNDLE, "train.json"))
    parser["layout"] = "duke"  # 2 classes
    post = parser.get_parsed_content("validate#postprocessing")
    # fluid predicted everywhere; the label has fluid in column 1 only and column 0 unannotated (255)
    pred = torch.zeros(2, 3, 2)
    pred[1] = 1.0
    label = torch.tensor([[[255.0, 255.0], [1.0, 1.0], [0.0, 0.0]]])
    out = post({"pred": pred, "label": label})
    assert out["pred"].shape == out["label"].shape == (2, 3, 2)
    # fluid IoU: 2 true pixels of 4 predicted in the annotated columns 1-2 (column 0 counts for neither)
    iou = MeanIoU(include_background=False)(out["pred"][None], out["label"][None])
    assert iou.item() == pytest.approx(2 / 4)


@pytest.mark.slow
def test_two_process_gloo_mean_taught_training_saves_the_teacher_once(tmp_path, demo_data_dir):
    bundle_root = tmp_path / "bundle"
    overrides = {"bundle_root": bundle_root, "demo_data_dir": demo_data_dir, "mode": "mean_taught", "epochs": 2}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file"]
    cmd += [str(configs(OCT_BUNDLE, "train.json", "demo.json", "multi_gpu_train.json"))]
    cmd += cli_args({**overrides, "dist_backend": "gloo"})
    env = subprocess_env()
    env["CUDA_VISIBLE_DEVICES"] = ""  # the gloo/CPU path even where a GPU exists
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    models = bundle_root / "models"
    assert sorted(p.name for p in models.iterdir()) == ["checkpoint_epoch=2.pt", "model.pt", "model.pt.record.json"]
    state = torch.load(models / "checkpoint_epoch=2.pt", map_location="cpu", weights_only=False)
    assert not any(k.startswith("module.") for k in state["model"])
    # 8 pixel-labelled B-scans shared by 2 ranks: 4 each, one batch of 4 an epoch
    assert state["trainer"]["iteration"] == 2 and "ema_teacher" in state["extra_state"]


@pytest.mark.slow
def test_embedded_default_trains_evaluates_and_infers_on_volumes_and_bscans(tmp_path, demo_data_dir):
    root = tmp_path / "b"
    _train(root, demo_data_dir)
    assert (root / "models" / "model.pt").is_file()
    common = {"bundle_root": str(root), "demo_data_dir": str(demo_data_dir)}
    bundle_run(OCT_BUNDLE, ["train.json", "evaluate.json", "demo.json"], **common)
    metrics = dict(line.split(",") for line in (root / "eval" / "metrics.csv").read_text().splitlines())
    assert 0.0 <= float(metrics["test_mean_iou"]) <= 1.0 and 0.0 <= float(metrics["test_mean_dice"]) <= 1.0
    # 2 of the 6 subjects held out, 8 B-scans each: one row per test B-scan
    rows = (root / "eval" / "test_mean_iou_raw.csv").read_text().splitlines()[1:]
    assert len(rows) == 16
    # each row names its volume and B-scan
    names = [row.split("\t")[0].split(",")[0] for row in rows]
    assert len(set(names)) == 16 and all("oct.mhd:bscan" in name for name in names), names[:3]

    # inference without an input folder: the generated volumes, B-scan by B-scan (SliceInferer), original size
    import nibabel as nib

    bundle_run(OCT_BUNDLE, ["inference.json", "demo.json"], **common)
    predictions = sorted((root / "eval" / "predictions").rglob("oct_seg.nii.gz"))
    assert len(predictions) == 6
    volume = np.asarray(nib.load(predictions[0]).dataobj)
    assert volume.shape == (64, 48, 8)  # (width, depth, B-scans) of the generated (8, 48, 64) volume
    assert set(np.unique(volume)) <= {0, 1, 2, 3}

    # inference on a folder of B-scan PNGs: one class-index PNG per B-scan, at the B-scan's size
    image, _ = synthetic_oct_volume((2, 40, 56), seed=5)
    write_bscan_pngs(image, None, tmp_path / "scans")
    bundle_run(OCT_BUNDLE, ["inference.json", "demo.json"], input_dir=str(tmp_path / "scans" / "images"), **common)
    masks = sorted((root / "eval" / "predictions").glob("*_seg.png"))
    assert [m.name for m in masks] == ["bscan_000_seg.png", "bscan_001_seg.png"]
    with Image.open(masks[0]) as mask:
        assert mask.size == (56, 40)
        assert set(np.unique(np.asarray(mask))) <= {0, 1, 2, 3}


def _checkpoint(root: Path) -> dict:
    (path,) = sorted((root / "models").glob("checkpoint_epoch=*.pt"))
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize(
    "mode",
    # Mean-Taught trains in the fast suite through the resume test
    [pytest.param(m, marks=pytest.mark.slow) if m != "supervised" else m for m in MLDS_MODES],
)
def test_every_mode_trains_two_iterations_of_the_demo(tmp_path, demo_data_dir, mode):
    _train(tmp_path, demo_data_dir, mode=mode)
    state = _checkpoint(tmp_path)
    # 8 pixel-labelled B-scans in batches of 4
    assert state["trainer"]["iteration"] == 2 and state["trainer"]["epoch_length"] == 2
    assert ("ema_teacher" in state.get("extra_state", {})) == (mode in ("mean_taught", "mean_teacher"))


def test_mean_taught_resume_restores_the_teacher(tmp_path, demo_data_dir):
    from monai.bundle import ConfigWorkflow

    _train(tmp_path, demo_data_dir, mode="mean_taught")
    saved = _checkpoint(tmp_path)["extra_state"]["ema_teacher"]

    workflow = ConfigWorkflow(
        config_file=configs(OCT_BUNDLE, "train.json", "demo.json"),
        logging_file=str(OCT_BUNDLE / "configs" / "logging.conf"),
        workflow_type="train",
        bundle_root=str(tmp_path),
        demo_data_dir=str(demo_data_dir),
        mode="mean_taught",
        epochs=2,
        resume=True,
    )
    workflow.initialize()
    teacher = workflow.parser.get_parsed_content("ema_teacher")
    fresh = {k: v.clone() for k, v in teacher.state_dict().items()}
    seen: dict = {}

    def _teacher_at_first_iteration(engine):
        seen.update({k: v.clone() for k, v in teacher.state_dict().items()})

    trainer = workflow.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(Events.ITERATION_STARTED(once=3), _teacher_at_first_iteration)
    workflow.run()
    workflow.finalize()
    assert trainer.state.epoch == 2 and trainer.state.iteration == 4
    # at the first iteration of the resumed epoch the teacher is the saved one, not the new run's copy of the student
    assert seen.keys() == saved.keys()
    assert all(torch.equal(seen[k], saved[k]) for k in saved)
    assert any(not torch.equal(fresh[k], saved[k]) for k in saved if saved[k].is_floating_point())


@pytest.mark.slow
def test_mean_taught_run_resumed_at_an_epoch_boundary_ends_as_the_uninterrupted_run(tmp_path, demo_data_dir):
    # shuffled pixel-labelled loader, random flips, seeded teacher perturbations, the shuffled unlabelled stream:
    # all restored or re-derived from (seed, epoch), so the resumed run repeats the uninterrupted one
    _train(tmp_path / "whole", demo_data_dir, mode="mean_taught", epochs=3)
    _train(tmp_path / "parts", demo_data_dir, mode="mean_taught", epochs=1)
    _train(tmp_path / "parts", demo_data_dir, mode="mean_taught", epochs=3, resume=True)
    whole, parts = _checkpoint(tmp_path / "whole"), _checkpoint(tmp_path / "parts")
    assert parts["trainer"]["iteration"] == whole["trainer"]["iteration"] == 6
    for name in ("model", "extra_state"):
        flat_whole, flat_parts = _flatten(whole[name]), _flatten(parts[name])
        assert flat_whole.keys() == flat_parts.keys()
        assert all(torch.equal(flat_whole[k], flat_parts[k]) for k in flat_whole), name


def _flatten(tree, prefix: str = "") -> dict:
    """The tensors of a nested state dictionary by dotted path."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix: tree} if isinstance(tree, torch.Tensor) else {}


@pytest.mark.parametrize("layout", ["retouch", "duke"])
def test_given_missing_folder_is_an_error_naming_it_not_a_fallback(tmp_path, layout):
    folder = tmp_path / "no_such_data"
    with pytest.raises(Exception) as info:
        bundle_run(
            OCT_BUNDLE, ["train.json", "demo.json"], bundle_root=str(tmp_path / "b"), dataset_dir=str(folder),
            layout=layout,
        )  # fmt: skip
    messages = [str(e) for e in exception_chain(info.value) if isinstance(e, DatasetLayoutError)]
    assert messages and str(folder) in messages[0]
    assert not (tmp_path / "b" / "eval" / "demo_data").exists()


def test_label_value_outside_the_classes_is_an_error_naming_the_file(tmp_path):
    for number in (1, 2):
        image, label = synthetic_oct_volume((4, 32, 32), seed=number)
        label[:, 0, 0] = 7  # not one of RETOUCH's classes 0-3
        write_metaimage_volume(image, tmp_path / "data" / "Cirrus" / f"TRAIN00{number}" / "oct.mhd")
        write_metaimage_volume(label, tmp_path / "data" / "Cirrus" / f"TRAIN00{number}" / "reference.mhd")
    with pytest.raises(Exception) as info:
        bundle_run(
            OCT_BUNDLE,
            ["train.json", "demo.json"],
            bundle_root=str(tmp_path / "b"),
            dataset_dir=str(tmp_path / "data"),
            n_pixel_labelled=2,
        )
    messages = [str(e) for e in exception_chain(info.value) if isinstance(e, DataFileError)]
    assert messages and "reference.mhd" in messages[0] and "7" in messages[0], messages


def test_inference_components_parse_without_listing_inputs(tmp_path):
    # what MONAI Label reads, with the input kind given: no input folder is listed, no demo set generated
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(configs(OCT_BUNDLE, "inference.json"))
    parser["bundle_root"] = str(tmp_path / "b")
    for kind, inferer in (("bscans", "SimpleInferer"), ("volumes", "SliceInferer")):
        parser["input_kind"] = kind
        assert type(parser.get_parsed_content("inferer", lazy=False)).__name__ == inferer
        assert parser.get_parsed_content("preprocessing", lazy=False) is not None
        assert parser.get_parsed_content("postprocessing", lazy=False) is not None
    assert not (tmp_path / "b").exists()


def test_layout_other_than_retouch_without_folder_is_refused(tmp_path):
    with pytest.raises(Exception) as info:
        bundle_run(OCT_BUNDLE, ["train.json", "demo.json"], bundle_root=str(tmp_path), layout="duke")
    assert any("needs --dataset_dir" in str(e) for e in exception_chain(info.value))
    assert not (tmp_path / "eval" / "demo_data").exists()


@pytest.mark.slow
@pytest.mark.skipif(not DUKE_DIR.is_dir(), reason=f"{DUKE_DIR} is absent (../shared/data is not beside the project)")
def test_duke_subset_trains_through_the_duke_layout_with_unannotated_columns_ignored(tmp_path):
    bundle_run(
        OCT_BUNDLE,
        ["train.json", "demo.json"],
        bundle_root=str(tmp_path),
        layout="duke",
        dataset_dir=str(DUKE_DIR),
        ignore_unannotated="fluid_extent",
        mode="self_taught",
        epochs=1,
    )
    state = _checkpoint(tmp_path)
    # subject 1 or 2 is held out; 8 of the other's 11 B-scans are pixel-labelled, in batches of 4
    assert state["trainer"]["iteration"] == 2
    model = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert model["standard_head.out.conv.weight"].shape[0] == 2  # background and fluid


def test_unlabelled_stream_has_its_own_random_transforms(tmp_path, demo_data_dir):
    # the stream re-seeds its transforms every epoch: shared instances would re-seed the labelled augmentation too
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(configs(OCT_BUNDLE, "train.json", "demo.json"))
    parser.update({"bundle_root": str(tmp_path), "demo_data_dir": str(demo_data_dir), "mode": "self_taught"})
    labelled = {id(t) for t in parser.get_parsed_content("train#random_transforms")}
    parts = parser.get_parsed_content("train#unlabelled_part_transforms")
    assert set(parts) == {"image", "unlabelled"}
    for transforms in parts.values():
        assert labelled.isdisjoint(id(t) for t in transforms)
        assert any(type(t).__name__ == "RandFlipd" for t in transforms)
