"""The MONAI Label app against a real MONAI Label 0.8.5 server: labels, auto-segmentation, bad requests, training.

The server runs in the separate environment of ``apps/monailabel/requirements-label.txt`` (its python in
``$MONAI_MASKSUP_LABEL_PYTHON``, else the project's ``.label-venv``; ``apps/monailabel/run_integration_tests.sh``
builds it and runs these tests). Without it every test here skips and says how to build it; with the variable
set, they fail instead. One server, on 127.0.0.1 and a free port, serves both bundles with the demo network
(``configs/demo.json``) for the whole module, from copies of the bundles and a temporary studies folder
(generated PNG images and volumes, and real Kvasir-SEG, CVC-ClinicDB and GlaS images copied from
``../shared/data``). It is stopped when the module ends, whatever happened. The tests run in file order:
training and scoring come last.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from tests.apps.conftest import APP_DIR, label_python
from tests.conftest import DATA_DIR, PROJECT_ROOT

pytestmark = [pytest.mark.monailabel, pytest.mark.slow]

BUNDLES = ("masksup_glas", "masksup_kvasir")
KVASIR_IDS = ("cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4", "cju0qx73cjw570799j4n5cjze")
GLAS_IDS = ("testA_1", "train_1")
CVC_FRAME = "1"
GENERATED_IDS = tuple(f"generated_{i}" for i in range(4))
VOLUME_IDS = ("volume_nifti", "volume_metaimage")
#: a bundle of the retinal-OCT kind, written by the test: a 2D network run B-scan by B-scan over volumes
VOLUME_BUNDLE = "slice_volume_demo"
VOLUME_SHAPE = (32, 32, 4)
#: the retinal-OCT bundle: volumes under its name, B-scan images under <name>_bscans
OCT_BUNDLE = "mlds_retinal_oct"
OCT_BSCANS = f"{OCT_BUNDLE}_bscans"
#: two volumes of the OCT bundle's generated demo set (RETOUCH layout, MetaImage), and a B-scan of the first as a PNG
OCT_VOLUME_IDS = ("oct_cirrus_train001", "oct_cirrus_train002")
OCT_VOLUME_ID = OCT_VOLUME_IDS[0]
OCT_BSCAN_ID = "oct_cirrus_train001_bscan3"
SCORING = "disagreement_masksup_kvasir"
SERVER_START_S = 180
TRAIN_S = 300
REQUEST_S = 120
DATASTORE_S = 60


# --- the server's environment --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _untrained_model(bundle: Path) -> None:
    """A seeded, untrained demo network as the bundle's ``models/model.pt`` (a training here takes 20 s)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / "inference.json"), str(bundle / "configs" / "demo.json")])
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    (bundle / "models").mkdir()
    torch.save(network.state_dict(), bundle / "models" / "model.pt")


def _oct_model(bundle: Path, volume: Path) -> None:
    """
    The OCT bundle's seeded, untrained demo network as ``models/model.pt``, its output bias shifted by minus the
    mean logit of each class over ``volume``: an untrained network gives one class everywhere, this one gives
    every class somewhere, so the comparison of the masks covers all four class indices.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / "inference.json"), str(bundle / "configs" / "demo.json")])
    parser["input_kind"] = "volumes"
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def").eval()
    image = parser.get_parsed_content("preprocessing")({"image": str(volume)})["image"].unsqueeze(0)
    with torch.no_grad():
        logits = parser.get_parsed_content("inferer")(image, network)
        network.standard_head.out.conv.bias.sub_(logits.mean(dim=(0, 2, 3, 4)).as_tensor())
    (bundle / "models").mkdir()
    torch.save(network.state_dict(), bundle / "models" / "model.pt")


def _volume_bundle(bundle: Path) -> None:
    """
    A volume bundle in the standard layout, as the retinal-OCT bundle will be: ``metadata.json`` with a 2D input
    ``spatial_shape`` and a ``channel_def``; ``inference.json`` with ``network_def`` (a tiny 2D ``BasicUNet``),
    ``preprocessing`` (``ITKReader``: NIfTI and MetaImage), a ``SliceInferer`` over the last axis, and
    ``postprocessing``; a seeded, untrained ``models/model.pt``; no ``train.json`` (served for inference only).
    """
    (bundle / "configs").mkdir(parents=True)
    metadata = {
        "version": "0.1.0",
        "description": "volume segmentation, B-scan by B-scan (test bundle)",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": list(VOLUME_SHAPE[:2])}},
            "outputs": {"pred": {"type": "image", "num_channels": 1, "channel_def": {"0": "fluid (logit)"}}},
        },
    }
    inference = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "network_def": {
            "_target_": "BasicUNet",
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": 1,
            "features": [4, 4, 4, 4, 4, 4],
        },
        "network": "$@network_def.to(@device)",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image", "reader": "ITKReader", "image_only": True},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": 0, "a_max": 255, "b_min": 0, "b_max": 1},
                {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
            ],
        },
        "inferer": {"_target_": "SliceInferer", "spatial_dim": 2, "roi_size": [-1, -1], "sw_batch_size": 4},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
                {"_target_": "AsDiscreted", "keys": "pred", "threshold": 0.5},
            ],
        },
    }
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata))
    (bundle / "configs" / "inference.json").write_text(json.dumps(inference))
    (bundle / "configs" / "demo.json").write_text("{}")  # the server's --conf configs demo.json
    _untrained_model(bundle)


def _generated_image(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image ``(H, W, 3)`` with bright discs on a textured background, and its 0/1 disc mask ``(H, W)``."""
    rng = np.random.default_rng(seed)
    height, width = 96 + 8 * seed, 128
    rows, cols = np.mgrid[:height, :width]
    mask = np.zeros((height, width), bool)
    for _ in range(3):
        r, c, radius = rng.integers(16, height - 16), rng.integers(16, width - 16), rng.integers(8, 16)
        mask |= (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
    image = rng.integers(20, 90, (height, width, 3))
    image[mask] = rng.integers(170, 250, (int(mask.sum()), 3))
    return image.astype(np.uint8), mask.astype(np.uint8)


def _studies(folder: Path) -> dict[str, Path]:
    """Fill the studies folder; returns ``{image id: file}``. Real images come from ``../shared/data``."""
    folder.mkdir()
    images = {}
    for i, name in enumerate(GENERATED_IDS):
        image, _ = _generated_image(i)
        Image.fromarray(image).save(folder / f"{name}.png")
        images[name] = folder / f"{name}.png"
    kvasir = DATA_DIR / "kvasir_seg" / "Kvasir-SEG" / "images"
    cvc = DATA_DIR / "cvc_clinicdb" / "CVC-ClinicDB" / "Original"
    glas = DATA_DIR / "glas_images_unlabelled"
    if kvasir.is_dir() and cvc.is_dir() and glas.is_dir():
        for name in KVASIR_IDS:
            images[name] = Path(shutil.copy(kvasir / f"{name}.jpg", folder))
        images[f"cvc_{CVC_FRAME}"] = Path(shutil.copy(cvc / f"{CVC_FRAME}.tif", folder / f"cvc_{CVC_FRAME}.tif"))
        for name in GLAS_IDS:
            images[name] = Path(shutil.copy(glas / f"{name}.bmp", folder))
    # volumes, which the 2D bundles' training and scoring leave out: a NIfTI, and a MetaImage header with its data
    volume = np.random.default_rng(1).integers(0, 255, VOLUME_SHAPE, dtype=np.uint8)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / f"{VOLUME_IDS[0]}.nii.gz")
    (folder / f"{VOLUME_IDS[1]}.raw").write_bytes(volume.tobytes(order="F"))
    (folder / f"{VOLUME_IDS[1]}.mhd").write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = {' '.join(map(str, VOLUME_SHAPE))}\nElementType = MET_UCHAR\n"
        f"ElementDataFile = {VOLUME_IDS[1]}.raw\n"
    )
    _oct_studies(folder, images)
    # random bytes under an image name: the datastore lists it, no reader can open it
    (folder / "corrupt.png").write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return images


def _oct_studies(folder: Path, images: dict[str, Path]) -> None:
    """
    Two volumes of the OCT bundle's generated demo set (``make_synthetic_retouch``, as the bundle writes it
    without data: MetaImage ``oct.mhd`` + ``oct.raw``) under their own names, their reference labels as NIfTI
    class-index volumes beside the studies (``<id>_label.nii.gz``, for saving them through the server), and
    B-scan 3 of the first as a PNG (saved as RGB, grey in every channel: the 2D bundles' trainings and scoring
    read every unlabelled PNG as a colour frame).
    """
    import itk

    from monai_masksup.data.synthetic_oct import make_synthetic_retouch

    generated = make_synthetic_retouch(folder.parent / "oct_generated", n_volumes=2, vendors=("Cirrus",))
    for number, image_id in enumerate(OCT_VOLUME_IDS, start=1):
        volume = generated / "Cirrus" / f"TRAIN{number:03d}"
        shutil.copy(volume / "oct.raw", folder / f"{image_id}.raw")
        header = (volume / "oct.mhd").read_text()
        assert "ElementDataFile = oct.raw" in header, header
        (folder / f"{image_id}.mhd").write_text(header.replace("oct.raw", f"{image_id}.raw"))
        images[image_id] = folder / f"{image_id}.mhd"
        # written through ITK, so the label keeps the volume's geometry
        itk.imwrite(itk.imread(str(volume / "reference.mhd")), str(folder.parent / f"{image_id}_label.nii.gz"))
    bscans = itk.array_from_image(itk.imread(str(images[OCT_VOLUME_ID])))  # (n_bscans, depth, width)
    Image.fromarray(bscans[3]).convert("RGB").save(folder / f"{OCT_BSCAN_ID}.png")
    images[OCT_BSCAN_ID] = folder / f"{OCT_BSCAN_ID}.png"


class LabelServer:
    """A running ``monailabel start_server`` and what it serves."""

    def __init__(self, root: Path, python: str) -> None:
        self.root = root
        self.bundles = root / "bundles"
        self.studies = root / "studies"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "server.log"
        self.python = python
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            # the checkout's monai_masksup, whatever the label environment has installed
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
            "MONAI_LABEL_SESSION_PATH": str(self.root / "sessions"),
            # MONAI Label reruns every scoring method in a background process at start and after each training;
            # the test runs its scoring itself, once
            "MONAI_LABEL_AUTO_UPDATE_SCORING": "false",
        }
        command = [self.python, "-m", "monailabel.main", "start_server", "--app", str(APP_DIR)]
        command += ["--studies", str(self.studies), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--conf", "bundles", str(self.bundles), "--conf", "configs", "demo.json"]
        with open(self.log_path, "wb") as log:
            # its own process group: stop() ends the server and the training processes it starts
            self.process = subprocess.Popen(
                command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.get("/info/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"no answer from {self.url}/info/ within {SERVER_START_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes, str]:
        """``(status, body, content type)`` of one request; HTTP errors are answers too."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_S) as answer:
                return answer.status, answer.read(), answer.headers.get("content-type", "")
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers.get("content-type", "")

    def get(self, path: str) -> tuple[int, bytes, str]:
        return self.request("GET", path)

    def post_json(self, path: str, payload: dict | None = None) -> tuple[int, bytes, str]:
        body = json.dumps(payload or {}).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def delete(self, path: str) -> tuple[int, bytes, str]:
        return self.request("DELETE", path)

    def put_file(self, path: str, field: str, file: Path) -> tuple[int, bytes, str]:
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{file.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body += file.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        return self.request("PUT", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def info(self) -> dict:
        status, body, _ = self.get("/info/")
        assert status == 200, body
        return json.loads(body)

    def infer_mask(self, model: str, image_id: str) -> np.ndarray:
        status, body, content_type = self.post_json(f"/infer/{model}?image={image_id}&output=image")
        assert status == 200, f"{model} on {image_id}: {status} {body[:500]!r}\n{self.log_tail()}"
        assert content_type == "image/png", content_type
        out = self.root / f"served_{model}_{image_id}.png"
        out.write_bytes(body)
        with Image.open(out) as mask:
            assert mask.mode == "L", f"the mask is {mask.mode}, not 8-bit grey"
            return np.array(mask)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelServer]:
    python = label_python()
    root = tmp_path_factory.mktemp("monailabel")
    for name in (*BUNDLES, OCT_BUNDLE):
        shutil.copytree(
            PROJECT_ROOT / "bundles" / name, root / "bundles" / name, ignore=shutil.ignore_patterns("models", "eval")
        )
    for name in BUNDLES:
        _untrained_model(root / "bundles" / name)
    _volume_bundle(root / "bundles" / VOLUME_BUNDLE)
    _studies(root / "studies")
    _oct_model(root / "bundles" / OCT_BUNDLE, root / "studies" / f"{OCT_VOLUME_ID}.mhd")
    label_server = LabelServer(root, python)
    try:
        label_server.start()
        yield label_server
    finally:
        label_server.stop()


def _needs_real_data() -> None:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data subsets {DATA_DIR} are absent (../shared/data is not beside the project)")


def _run_bundle_inference(server: LabelServer, bundle: Path, inputs: Path, name: str) -> Path:
    """Run ``inference.json`` + ``demo.json`` of ``bundle`` on the files in ``inputs``; return the prediction folder."""
    predictions = server.root / name
    configs = [str(bundle / "configs" / "inference.json"), str(bundle / "configs" / "demo.json")]
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(configs)]
    command += ["--bundle_root", str(bundle), "--input_dir", str(inputs), "--prediction_dir", str(predictions)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(command, cwd=server.root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return predictions


def _bundle_masks(server: LabelServer, model: str, image_ids: list[str], tag: str) -> dict[str, np.ndarray]:
    """The masks ``python -m monai.bundle run`` writes with ``inference.json`` + ``demo.json`` for the images."""
    bundle = server.bundles / model
    images = sorted(p for p in server.studies.iterdir() if p.is_file() and p.stem in image_ids)
    inputs = server.root / f"input_{model}_{tag}"
    inputs.mkdir()
    for image in images:
        shutil.copy(image, inputs)
    predictions = _run_bundle_inference(server, bundle, inputs, f"predictions_{model}_{tag}")
    masks = {}
    for image in images:
        with Image.open(predictions / f"{image.stem}_mask.png") as mask:
            masks[image.stem] = np.array(mask)
    return masks


def _assert_served_equals_bundle(server: LabelServer, model: str, image_ids: list[str], tag: str) -> None:
    expected = _bundle_masks(server, model, image_ids, tag)
    assert sorted(expected) == sorted(image_ids)
    for image_id, bundle_mask in expected.items():
        served = server.infer_mask(model, image_id)
        assert served.shape == bundle_mask.shape, image_id
        assert set(np.unique(served)) <= {0, 1}, f"{image_id}: values {np.unique(served)} are not class indices"
        # the bundle writes foreground 255, MONAI Label's labels are class indices
        np.testing.assert_array_equal(served, (bundle_mask == 255).astype(np.uint8), err_msg=f"{model} {image_id}")


# --- the tests, in file order --------------------------------------------------------------------------------


def test_info_publishes_each_bundle_with_its_label_as_1(server):
    info = server.info()
    assert set(info["models"]) == {*BUNDLES, VOLUME_BUNDLE, OCT_BUNDLE, OCT_BSCANS}
    # the volume bundle has no train.json: inference only
    assert set(info["trainers"]) == {*BUNDLES, OCT_BUNDLE}
    assert info["models"][VOLUME_BUNDLE]["labels"] == {"fluid": 1}
    # a 2D network through a SliceInferer segments volumes
    assert info["models"][VOLUME_BUNDLE]["dimension"] == 3
    assert info["models"]["masksup_glas"]["labels"] == {"gland": 1}
    assert info["models"]["masksup_kvasir"]["labels"] == {"polyp": 1}
    assert info["models"]["masksup_kvasir"]["dimension"] == 2
    # only the served model file is offered: no interval checkpoints in models/
    assert info["models"]["masksup_kvasir"]["config"]["model_filename"] == ["model.pt"]
    # masksup_kvasir ships configs/train_semisup.json, masksup_glas does not
    assert info["trainers"]["masksup_glas"]["config"]["semi_supervised"] is False
    assert info["trainers"]["masksup_kvasir"]["config"]["semi_supervised"] is True
    assert set(info["scoring"]) == {SCORING}
    assert SCORING in info["strategies"]


def test_datastore_lists_bmp_tiles_and_volumes_without_an_extension_setting(server):
    status, body, _ = server.get("/datastore/?output=all")
    assert status == 200, body
    listed = json.loads(body)["objects"]
    assert {*GENERATED_IDS, *VOLUME_IDS, "corrupt"} <= set(listed)
    assert listed[VOLUME_IDS[0]]["image"]["ext"] == ".nii.gz"
    assert listed[VOLUME_IDS[1]]["image"]["ext"] == ".mhd"
    if DATA_DIR.is_dir():
        assert listed[GLAS_IDS[0]]["image"]["ext"] == ".bmp"


def _volume_mask_by_hand(server: LabelServer, volume: Path) -> np.ndarray:
    """The volume bundle's mask computed here: its preprocessing, network and inferer, sigmoid > 0.5."""
    from monai.bundle import ConfigParser

    bundle = server.bundles / VOLUME_BUNDLE
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True))
    image = parser.get_parsed_content("preprocessing")({"image": str(volume)})["image"].unsqueeze(0)
    with torch.no_grad():
        logits = parser.get_parsed_content("inferer")(image, network.eval())
    return (torch.sigmoid(logits)[0, 0] > 0.5).numpy().astype(np.uint8)


@pytest.mark.parametrize("image_id", VOLUME_IDS)
def test_nifti_and_metaimage_volumes_get_a_nifti_volume_mask(server, image_id):
    status, body, _ = server.post_json(f"/infer/{VOLUME_BUNDLE}?image={image_id}&output=image")
    assert status == 200, f"{status} {body[:500]!r}\n{server.log_tail()}"
    out = server.root / f"served_{image_id}.nii.gz"
    out.write_bytes(body)
    served = np.asarray(nib.load(out).dataobj)
    assert served.dtype == np.uint8 and served.shape == VOLUME_SHAPE
    # both volumes hold the same voxels, written as NIfTI and as MetaImage
    expected = _volume_mask_by_hand(server, server.studies / f"{VOLUME_IDS[0]}.nii.gz")
    assert 0 < expected.sum() < expected.size, "the seeded network should mark some voxels, not all"
    np.testing.assert_array_equal(served, expected)


def test_info_publishes_the_oct_bundle_for_volumes_and_bscans_with_its_fluid_classes(server):
    info = server.info()
    # channel k of the softmax output is class k; the postprocessing's argmax writes it
    fluids = {"intraretinal fluid": 1, "subretinal fluid": 2, "pigment epithelial detachment": 3}
    assert info["models"][OCT_BUNDLE]["labels"] == fluids
    assert info["models"][OCT_BUNDLE]["dimension"] == 3
    assert info["models"][OCT_BSCANS]["labels"] == fluids
    assert info["models"][OCT_BSCANS]["dimension"] == 2
    # served without listing an input folder: the bundle's demo volumes were never generated
    assert not (server.bundles / OCT_BUNDLE / "eval").exists()


def _oct_bundle_masks(server: LabelServer, image_ids: list[str], tag: str) -> dict[str, np.ndarray]:
    """The class-index maps the OCT bundle's ``inference.json`` + ``demo.json`` writes for the studies given."""
    bundle = server.bundles / OCT_BUNDLE
    inputs = server.root / f"input_{OCT_BUNDLE}_{tag}"
    inputs.mkdir()
    for image_id in image_ids:
        for file in server.studies.glob(f"{image_id}.*"):
            shutil.copy(file, inputs)  # a MetaImage header with its .raw
    predictions = _run_bundle_inference(server, bundle, inputs, f"predictions_{OCT_BUNDLE}_{tag}")
    masks = {}
    for image_id in image_ids:
        (written,) = predictions.glob(f"{image_id}_seg.*")
        if written.suffix == ".png":
            with Image.open(written) as mask:
                masks[image_id] = np.array(mask)
        else:
            masks[image_id] = np.asarray(nib.load(written).dataobj)
    return masks


def test_oct_volume_masks_equal_the_bundle_inference_output(server):
    volume_ids = [OCT_VOLUME_ID, VOLUME_IDS[0]]  # the generated MetaImage, and a NIfTI volume
    expected = _oct_bundle_masks(server, volume_ids, "volumes")
    for image_id in volume_ids:
        status, body, _ = server.post_json(f"/infer/{OCT_BUNDLE}?image={image_id}&output=image")
        assert status == 200, f"{status} {body[:500]!r}\n{server.log_tail()}"
        out = server.root / f"served_{OCT_BUNDLE}_{image_id}.nii.gz"
        out.write_bytes(body)
        served = np.asarray(nib.load(out).dataobj)
        assert served.dtype == np.uint8 and served.shape == expected[image_id].shape, image_id
        np.testing.assert_array_equal(served, expected[image_id], err_msg=image_id)
    # the generated volume's size comes back (the network saw 64 x 48 B-scans), with every class
    assert expected[OCT_VOLUME_ID].shape == (64, 48, 8)
    assert set(np.unique(expected[OCT_VOLUME_ID])) == {0, 1, 2, 3}


def test_oct_bscan_png_mask_equals_the_bundle_inference_output(server):
    expected = _oct_bundle_masks(server, [OCT_BSCAN_ID], "bscans")[OCT_BSCAN_ID]
    served = server.infer_mask(OCT_BSCANS, OCT_BSCAN_ID)
    assert served.shape == expected.shape
    assert set(np.unique(expected)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(served, expected)


def test_generated_png_masks_equal_the_bundle_inference_output(server):
    _assert_served_equals_bundle(server, "masksup_glas", list(GENERATED_IDS[:2]), "generated")


def test_real_jpeg_tiff_and_bmp_masks_equal_the_bundle_inference_output(server):
    _needs_real_data()
    _assert_served_equals_bundle(server, "masksup_kvasir", [KVASIR_IDS[0], f"cvc_{CVC_FRAME}"], "real")
    _assert_served_equals_bundle(server, "masksup_glas", [GLAS_IDS[0]], "real")


@pytest.mark.parametrize(
    "path, named",
    [
        ("/infer/masksup_nothing?image=generated_0", "masksup_nothing"),
        ("/infer/masksup_kvasir?image=no_such_image", "no_such_image"),
        ("/infer/masksup_kvasir", "Image"),
        ("/infer/masksup_kvasir?image=corrupt", "corrupt.png"),
    ],
    ids=["unknown model", "unknown image", "missing image parameter", "corrupt image"],
)
def test_bad_request_answers_500_naming_the_model_or_file_and_the_server_still_answers(server, path, named):
    status, body, _ = server.post_json(path)
    assert status == 500, body
    detail = json.loads(body)["detail"]
    assert named in detail
    assert server.get("/info/")[0] == 200


def test_scoring_before_any_semi_supervised_training_says_there_is_no_teacher(server):
    status, body, _ = server.post_json(f"/scoring/{SCORING}?run_sync=true")
    assert status == 500, body
    detail = json.loads(body)["detail"]
    assert "no mean-teacher weights" in detail and "masksup_kvasir" in detail
    assert str(server.bundles / "masksup_kvasir" / "eval" / "monailabel" / "checkpoints") in detail
    assert server.get("/info/")[0] == 200


def test_a_removed_study_leaves_the_datastore(server):
    # the corrupt file would stop the semi-supervised training's unlabelled loader, which reads every study
    status, body, _ = server.delete("/datastore/image?id=corrupt")
    assert status == 200, body
    assert not (server.studies / "corrupt.png").exists()
    # the datastore (auto-reload) drops it when its file watcher reports the deletion: bounded wait
    deadline = time.monotonic() + DATASTORE_S
    while "corrupt" in json.loads(server.get("/datastore/?output=all")[1])["objects"]:
        assert time.monotonic() < deadline, f"corrupt still listed after {DATASTORE_S} s\n{server.log_tail()}"
        time.sleep(0.5)


def _save_generated_labels(server: LabelServer) -> None:
    """Final labels (class indices 0/1, as MONAI Label saves them) for the first three generated images."""
    for i, image_id in enumerate(GENERATED_IDS[:3]):
        label_file = server.root / f"label_{image_id}.png"
        Image.fromarray(_generated_image(i)[1]).save(label_file)
        status, body, _ = server.put_file(f"/datastore/label?image={image_id}&tag=final", "label", label_file)
        assert status == 200, body


def test_training_on_saved_labels_publishes_a_model_that_the_server_reloads(server):
    model_file = server.bundles / "masksup_glas" / "models" / "model.pt"
    before = model_file.read_bytes()
    _save_generated_labels(server)
    result = _train(server, "masksup_glas", {"max_epochs": 1, "val_split": 0.34})
    assert result["status"] == "DONE", f"{result}\n{server.log_tail()}"

    summary = json.loads((server.bundles / "masksup_glas" / "eval" / "monailabel" / "last_train.json").read_text())
    assert summary["training_images"] == 2 and summary["validation_images"] == 1
    assert summary["semi_supervised"] is False and "no configs/train_semisup.json" in summary["supervised_because"]
    assert model_file.read_bytes() != before
    # interval checkpoints stay out of models/, so MONAI Label offers only the trained model
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["model.pt", "model.pt.record.json"]
    assert server.info()["models"]["masksup_glas"]["config"]["model_filename"] == ["model.pt"]
    # the server reloads the new weights: its masks equal the bundle's with them
    _assert_served_equals_bundle(server, "masksup_glas", [GENERATED_IDS[1], GENERATED_IDS[3]], "trained")
    assert "Reload model from cache" in server.log_path.read_text(errors="replace")


def test_semi_supervised_training_learns_from_the_unlabelled_2d_studies(server):
    _save_generated_labels(server)  # the labels are the datastore's, for every model; saving again is harmless
    result = _train(server, "masksup_kvasir", {"max_epochs": 1, "val_split": 0.34})
    assert result["status"] == "DONE", f"{result}\n{server.log_tail()}"

    work_dir = server.bundles / "masksup_kvasir" / "eval" / "monailabel"
    summary = json.loads((work_dir / "last_train.json").read_text())
    assert summary["semi_supervised"] is True
    assert summary["config_files"][1].endswith("train_semisup.json")
    assert summary["training_images"] == 2 and summary["validation_images"] == 1
    # every 2D study without a final label; the volumes are left out
    labelled = {p.stem for p in (server.studies / "labels" / "final").iterdir()}
    assert set(GENERATED_IDS[:3]) <= labelled
    expected = {str(p.resolve()) for p in server.studies.iterdir() if p.suffix in {".png", ".jpg", ".tif", ".bmp"}}
    expected = {p for p in expected if Path(p).stem not in labelled}
    assert {str(Path(p).resolve()) for p in summary["unlabelled"]} == expected
    assert summary["unlabelled_images"] == len(expected)
    left_out = sorted(Path(p).name for p in summary["left_out"]["unlabelled"])
    volumes = [f"{VOLUME_IDS[1]}.mhd", f"{VOLUME_IDS[0]}.nii.gz", *(f"{i}.mhd" for i in OCT_VOLUME_IDS)]
    assert left_out == sorted(volumes)
    # the bundle's own lists (its demo data) were never built: the datastore's lists replaced them
    assert not any(work_dir.rglob("demo_data"))
    # the mean teacher is in the run's interval checkpoint
    (checkpoint,) = (work_dir / "checkpoints").glob("checkpoint_epoch=*.pt")
    assert "ema_teacher" in torch.load(checkpoint, map_location="cpu", weights_only=True)["extra_state"]


def _expected_disagreement(server: LabelServer, image_id: str) -> float:
    """The score by hand: mean over pixels of 2 (sigmoid(student) - sigmoid(teacher))^2, on the bundle's input."""
    from monai.bundle import ConfigParser

    bundle = server.bundles / "masksup_kvasir"
    (checkpoint,) = (bundle / "eval" / "monailabel" / "checkpoints").glob("checkpoint_epoch=*.pt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / "inference.json"), str(bundle / "configs" / "demo.json")])
    student, teacher = parser.get_parsed_content("network_def"), parser.get_parsed_content("network_def", lazy=False)
    student.load_state_dict(state["model"])
    teacher.load_state_dict({k.removeprefix("teacher."): v for k, v in state["extra_state"]["ema_teacher"].items()})
    (image,) = [p for p in server.studies.iterdir() if p.stem == image_id]
    x = parser.get_parsed_content("preprocessing")({"image": str(image)})["image"].unsqueeze(0)
    with torch.no_grad():
        p_student = torch.sigmoid(student.eval()(x))
        p_teacher = torch.sigmoid(teacher.eval()(x))
    return float((2 * (p_student - p_teacher) ** 2).mean())


def test_scoring_ranks_the_unlabelled_studies_by_teacher_student_disagreement(server):
    status, body, _ = server.post_json(f"/scoring/{SCORING}?run_sync=true")
    assert status == 200, f"{body[:2000]!r}\n{server.log_tail()}"
    result = json.loads(body)
    ranking = result["ranking"]
    scores = [entry["score"] for entry in ranking]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= score <= 2.0 for score in scores)
    labelled = {p.stem for p in (server.studies / "labels" / "final").iterdir()}
    unlabelled_2d = {p.stem for p in server.studies.iterdir() if p.suffix in {".png", ".jpg", ".tif", ".bmp"}}
    assert {entry["id"] for entry in ranking} == unlabelled_2d - labelled
    assert sorted(result["left_out"]) == sorted([*VOLUME_IDS, *OCT_VOLUME_IDS]) and result["failed"] == {}
    assert result["checkpoint"].endswith("checkpoint_epoch=1.pt")
    # the value: the bundle's preprocessing and networks, computed here by hand
    top = ranking[0]
    assert top["score"] == pytest.approx(_expected_disagreement(server, top["id"]), rel=1e-4, abs=1e-7)
    # the scores are in the datastore, where MONAI Label's strategy of the same name picks the highest one
    objects = json.loads(server.get("/datastore/?output=all")[1])["objects"]
    assert objects[top["id"]]["image"]["info"][SCORING] == pytest.approx(top["score"])
    status, body, _ = server.post_json(f"/activelearning/{SCORING}")
    assert status == 200, body
    assert json.loads(body)["id"] == top["id"]


def test_training_the_oct_bundle_on_saved_volume_labels_publishes_a_model_that_the_server_reloads(server):
    model_file = server.bundles / OCT_BUNDLE / "models" / "model.pt"
    before = model_file.read_bytes()
    for count, image_id in enumerate(OCT_VOLUME_IDS, start=1):
        label_file = server.root / f"{image_id}_label.nii.gz"
        status, body, _ = server.put_file(f"/datastore/label?image={image_id}&tag=final", "label", label_file)
        assert status == 200, body
        if count == 1:
            # one labelled volume leaves no validation volume: refused before the run, saying why
            result = _train(server, OCT_BUNDLE, {"max_epochs": 1, "val_split": 0.5})
            assert result["status"] != "DONE", result
            assert "left no validation volume (1 labelled volume(s) for training" in server.log_tail(400)
            assert model_file.read_bytes() == before
    result = _train(server, OCT_BUNDLE, {"max_epochs": 1, "val_split": 0.5})
    assert result["status"] == "DONE", f"{result}\n{server.log_tail()}"

    work_dir = server.bundles / OCT_BUNDLE / "eval" / "monailabel"
    summary = json.loads((work_dir / "last_train.json").read_text())
    # one labelled volume to train on, one to validate on, 8 B-scans each, as the bundle's split
    assert summary["training_images"] == 1 and summary["validation_images"] == 1
    assert summary["bscan_split"] == {"pixel": 8, "image": 0, "unlabelled": 0, "test": 8}
    # the 2D studies' labels (saved by the tests above) are not the volume bundle's
    assert all(Path(p).suffix == ".png" for p in summary["left_out"]["labelled"])
    assert model_file.read_bytes() != before
    assert sorted(p.name for p in model_file.parent.iterdir()) == ["model.pt", "model.pt.record.json"]
    # the bundle's demo data was never generated: the saved labels replaced it
    assert not any((server.bundles / OCT_BUNDLE).rglob("demo_data"))
    # the server reloads the new weights: its mask equals the bundle's with them
    expected = _oct_bundle_masks(server, [OCT_VOLUME_IDS[1]], "trained")[OCT_VOLUME_IDS[1]]
    status, body, _ = server.post_json(f"/infer/{OCT_BUNDLE}?image={OCT_VOLUME_IDS[1]}&output=image")
    assert status == 200, f"{status} {body[:500]!r}\n{server.log_tail()}"
    out = server.root / f"served_{OCT_BUNDLE}_trained.nii.gz"
    out.write_bytes(body)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), expected)


def _train(server: LabelServer, model: str, params: dict) -> dict:
    """Start a training through ``POST /train/<model>`` and wait (bounded) for it to end; its last status."""
    status, body, _ = server.post_json(f"/train/{model}", params)
    assert status == 200, body
    deadline = time.monotonic() + TRAIN_S
    while time.monotonic() < deadline:
        status, body, _ = server.get("/train/")
        assert status == 200, body
        task = json.loads(body)
        if task.get("status") not in ("SUBMITTED", "RUNNING"):
            return task
        time.sleep(2)
    raise TimeoutError(f"training of {model} did not end within {TRAIN_S} s:\n{server.log_tail()}")
