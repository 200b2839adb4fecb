"""Data sets of the MaskSup experiments: datalist indexers, readers, checks, splits and demo data."""

from .annotated_columns import DEFAULT_IGNORE_VALUE, IgnoreUnannotatedColumns, IgnoreUnannotatedColumnsd
from .binarize_label import BinarizeLabel, BinarizeLabeld
from .channel_checks import EnsureRGB, EnsureRGBd
from .cvc_clinicdb import CVC_CLINICDB_URL, index_cvc_clinicdb
from .error_summary import data_error_summary, find_data_error, install_data_error_summary
from .demo_data import DEMO_IMAGE_SIZE, glas_or_demo, polyps_or_demo
from .duke_oct import (
    DUKE_OCT_CLASSES,
    DUKE_OCT_URL,
    duke_oct_transforms,
    fluid_column_extent,
    index_duke_oct,
)
from .errors import DataFileError, DatasetLayoutError
from .glas import GLAS_URL, detect_glas_layout, index_glas, index_glas_export, index_glas_warwick, read_glas_grades
from .image_checks import check_complete, image_size, validate_datalist
from .jpeg_structure import check_jpeg_structure
from .kvasir import KVASIR_SEG_URL, index_kvasir_seg
from .label_values import CheckLabelValues, CheckLabelValuesd
from .loader_workers import default_num_workers
from .pairing import index_folder_pair, pair_by_name
from .pool_worker_shutdown import wait_for_pool_workers
from .polyp_split import polyp_split
from .pranet import PRANET_URL, index_pranet, list_pranet_test_sets
from .splits import make_splits, read_id_list, select_ids, split_train_val
from .synthetic_glas import make_synthetic_glas
from .synthetic_polyps import make_synthetic_polyps
from .tiff_reader import TiffFileReader

__all__ = [
    "DEFAULT_IGNORE_VALUE",
    "IgnoreUnannotatedColumns",
    "IgnoreUnannotatedColumnsd",
    "DUKE_OCT_CLASSES",
    "DUKE_OCT_URL",
    "duke_oct_transforms",
    "fluid_column_extent",
    "index_duke_oct",
    "BinarizeLabel",
    "BinarizeLabeld",
    "CVC_CLINICDB_URL",
    "CheckLabelValues",
    "CheckLabelValuesd",
    "DEMO_IMAGE_SIZE",
    "DataFileError",
    "DatasetLayoutError",
    "EnsureRGB",
    "EnsureRGBd",
    "GLAS_URL",
    "KVASIR_SEG_URL",
    "PRANET_URL",
    "TiffFileReader",
    "check_complete",
    "check_jpeg_structure",
    "data_error_summary",
    "default_num_workers",
    "detect_glas_layout",
    "find_data_error",
    "glas_or_demo",
    "image_size",
    "index_cvc_clinicdb",
    "index_folder_pair",
    "index_glas",
    "index_glas_export",
    "index_glas_warwick",
    "index_kvasir_seg",
    "index_pranet",
    "install_data_error_summary",
    "list_pranet_test_sets",
    "make_splits",
    "make_synthetic_glas",
    "make_synthetic_polyps",
    "pair_by_name",
    "polyp_split",
    "polyps_or_demo",
    "read_glas_grades",
    "read_id_list",
    "select_ids",
    "split_train_val",
    "validate_datalist",
    "wait_for_pool_workers",
]
