"""The semi-supervised override of the polyp bundle (configs/train_semisup.json) on the generated demo set."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser

from monai_masksup.engines import SemiSupervisedTrainer
from monai_masksup.networks import EMATeacher
from tests.bundles.conftest import KVASIR_BUNDLE, TINY_RUN, bundle_run, configs

SEMISUP = ["train.json", "train_semisup.json", "demo.json"]


def _parser(tmp_path, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(configs(KVASIR_BUNDLE, *SEMISUP))
    for key, value in {"bundle_root": str(tmp_path), **TINY_RUN, **overrides}.items():
        parser[key] = value
    return parser


def test_seeded_labelled_fraction_and_unlabelled_pools(tmp_path):
    parser = _parser(tmp_path)
    train = parser.get_parsed_content("train_datalist")
    labelled = parser.get_parsed_content("labeled_datalist")
    assert len(labelled) == round(0.1 * len(train)) >= 1
    assert all(item in train for item in labelled)
    # the reference's pool: every training image, without its label
    pool = parser.get_parsed_content("train#unlabeled_dataset#data")
    assert [item["image"] for item in pool] == [item["image"] for item in train]
    assert all(set(item) == {"image"} for item in pool)
    # the unlabelled part only, and the same labelled images for the same seed
    again = _parser(tmp_path, unlabeled_pool="unlabeled")
    assert again.get_parsed_content("labeled_datalist") == labelled
    rest = {item["image"] for item in again.get_parsed_content("train#unlabeled_dataset#data")}
    assert rest == {item["image"] for item in train} - {item["image"] for item in labelled}


def test_validation_with_the_teacher_checkpoints_the_teacher_and_the_student(tmp_path):
    parser = _parser(tmp_path, validate_with_teacher=True)
    trainer = parser.get_parsed_content("train#trainer")
    teacher = parser.get_parsed_content("ema_teacher")
    assert isinstance(trainer, SemiSupervisedTrainer) and isinstance(teacher, EMATeacher)
    assert trainer.teacher is teacher
    assert parser.get_parsed_content("validate#evaluator").network is teacher.teacher
    checkpoint = parser.get_parsed_content("train#training_checkpoint")
    assert checkpoint.network is teacher.teacher
    assert checkpoint.save_dict["student"] is parser.get_parsed_content("network")


@pytest.mark.slow
def test_one_epoch_on_the_demo_set_saves_the_teacher(tmp_path):
    bundle_run(KVASIR_BUNDLE, SEMISUP, bundle_root=str(tmp_path), epochs=1, **TINY_RUN)
    assert (tmp_path / "models" / "model.pt").is_file()
    state = torch.load(tmp_path / "models" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)
    assert {"ema_teacher", "mask_rng"} <= set(state["extra_state"])
    teacher = state["extra_state"]["ema_teacher"]
    assert set(teacher) == {f"teacher.{k}" for k in state["model"]}


@pytest.mark.slow
def test_stacks_under_multi_gpu_train_with_two_gloo_processes(tmp_path):
    import subprocess
    import sys

    from tests.bundles.conftest import cli_args, subprocess_env

    overrides = {"bundle_root": tmp_path, "epochs": 1, "dist_backend": "gloo", **TINY_RUN}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "monai.bundle", "run", "--config_file"]
    cmd += [str(configs(KVASIR_BUNDLE, *SEMISUP, "multi_gpu_train.json"))] + cli_args(overrides)
    env = subprocess_env()
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(cmd, cwd=str(KVASIR_BUNDLE), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    state = torch.load(tmp_path / "models" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state["extra_state"]["ema_teacher"])
    assert "loss_consistency" in proc.stdout + proc.stderr
