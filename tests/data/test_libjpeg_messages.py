from __future__ import annotations

import os

import numpy as np
from PIL import Image

from monai_masksup.data import libjpeg_messages as libjpeg_messages_module
from monai_masksup.data.libjpeg_messages import libjpeg_messages

from .image_files import write_smooth_rgb, write_zeroed_jpeg


def test_intact_jpeg_gives_no_message(tmp_path):
    path = tmp_path / "a.jpg"
    write_smooth_rgb(path)
    assert libjpeg_messages(path) == []


def test_broken_huffman_data_gives_libjpeg_warning_that_pillow_hides(tmp_path):
    path = write_zeroed_jpeg(tmp_path / "frame.jpg")
    with Image.open(path) as im:
        im.load()  # no error from Pillow
    messages = libjpeg_messages(path)
    assert messages and all(m.startswith("Corrupt JPEG data") for m in messages), messages


def test_stdout_is_restored_after_capture(tmp_path, capfd):
    libjpeg_messages(write_zeroed_jpeg(tmp_path / "frame.jpg"))
    print("still here")
    assert capfd.readouterr().out == "still here\n"


def test_grey_jpeg_decodes_without_message(tmp_path):
    path = tmp_path / "mask.jpg"
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))).save(path)
    assert libjpeg_messages(path) == []


def test_other_output_during_the_decode_reaches_stdout_not_the_messages(tmp_path, capfd, monkeypatch):
    decode = libjpeg_messages_module._decode_with_itk

    def decode_while_another_thread_prints(path):
        os.write(1, b"epoch 3 loss 0.25\n")  # fd 1, as a C library or another thread would write it
        decode(path)
        os.write(1, b"\ndone\n")

    monkeypatch.setattr(libjpeg_messages_module, "_decode_with_itk", decode_while_another_thread_prints)
    capfd.readouterr()
    messages = libjpeg_messages(write_zeroed_jpeg(tmp_path / "frame.jpg"))
    assert messages and all(m.startswith("Corrupt JPEG data") for m in messages), messages
    assert capfd.readouterr().out == "epoch 3 loss 0.25\n\ndone\n"
