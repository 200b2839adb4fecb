"""save_atomically: the final file is either the old one or the complete new one, never a fragment."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
import torch

from monai_masksup.handlers import atomic_save
from monai_masksup.handlers.atomic_save import file_sha256, remove_stale_temporaries, save_atomically


def test_saved_file_loads_and_the_digest_is_its_sha256(tmp_path):
    path = tmp_path / "sub" / "state.pt"
    digest = save_atomically({"w": torch.arange(5.0)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(5.0))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest() == file_sha256(path)
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]  # no temporary left


def test_a_write_that_dies_half_way_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    save_atomically({"w": torch.zeros(3)}, path)
    old = path.read_bytes()

    def dies_half_way(obj, file):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(atomic_save.torch, "save", dies_half_way)
    with pytest.raises(OSError, match="No space"):
        save_atomically({"w": torch.ones(3)}, path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_the_file_gets_the_umask_permissions_not_owner_only(tmp_path):
    previous = os.umask(0o022)
    try:
        save_atomically({"w": torch.zeros(1)}, tmp_path / "state.pt")
    finally:
        os.umask(previous)
    assert (tmp_path / "state.pt").stat().st_mode & 0o777 == 0o644


def test_stale_temporaries_are_removed_by_final_name(tmp_path):
    names = [".checkpoint_epoch=3.pt.4242.0123abcd.tmp", ".model.pt.17.deadbeef.tmp", "model.pt", ".other.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path, re.compile(r"checkpoint_epoch=\d+\.pt"))
    assert [p.name for p in removed] == [names[0]]
    assert sorted(p.name for p in remove_stale_temporaries(tmp_path)) == [names[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp", "model.pt"]
    assert remove_stale_temporaries(tmp_path / "missing") == []
