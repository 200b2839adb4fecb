"""Installation script of ``monai_masksup``, a MONAI plugin for masked supervised learning."""

import re
from pathlib import Path

from setuptools import find_packages, setup

_HERE = Path(__file__).resolve().parent
_VERSION = re.search(r'__version__ = "([^"]+)"', (_HERE / "monai_masksup" / "__init__.py").read_text()).group(1)

setup(
    name="monai_masksup",
    version=_VERSION,
    description="MONAI plugin: MaskSup, multi-label deep supervision, CutMix mean teacher and MaskContrast.",
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # torch 2.13 needs Python 3.10 or later
    python_requires=">=3.10",
    # the bundles' configs and docs travel inside the package (monai_masksup/_bundles), so that
    # `python -m monai_masksup.demo` finds them after a non-editable `pip install .`
    packages=find_packages(include=["monai_masksup", "monai_masksup.*"]) + ["monai_masksup._bundles"],
    package_dir={"monai_masksup._bundles": "bundles"},
    package_data={"monai_masksup._bundles": ["*/LICENSE", "*/configs/*.json", "*/configs/*.conf", "*/docs/*.md"]},
    # the floors are the versions the test suite runs with (CI); older ones are untested
    install_requires=[
        "monai>=1.6.1",
        "torch>=2.13.0",
        "pytorch-ignite>=0.4.11",
        "nibabel",
        "itk>=5.3",
        "numpy>=2.4.6",
        "tensorboard",
        "tqdm",
        # PILReader: the data sets ship PNG, JPEG and BMP images.
        "pillow",
        # CVC-ClinicDB frames are RGB TIFFs mis-tagged as greyscale: only tifffile reads their colour.
        "tifffile",
        # monai.bundle run parses its command line with fire.
        "fire",
        "pyyaml",
        # MONAI's Hausdorff distance (HD95 in evaluation reports) finds mask edges with scipy.ndimage on CPU.
        "scipy",
    ],
    extras_require={
        "test": ["pytest>=7", "jsonschema"],
        "bench": ["opencv-python-headless"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
