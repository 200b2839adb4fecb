"""Data sets of the MaskSup experiments: datalist indexers, readers, checks, splits and demo data."""

from .annotated_columns import DEFAULT_IGNORE_VALUE, IgnoreUnannotatedColumns, IgnoreUnannotatedColumnsd
from .bscan_folders import index_bscan_folders
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
from .image_level_labels import ImageLevelLabels, ImageLevelLabelsd
from .image_checks import check_complete, image_size, validate_datalist
from .jpeg_structure import check_jpeg_structure
from .kvasir import KVASIR_SEG_URL, index_kvasir_seg
from .metaimage_header import metaimage_size, read_metaimage_header
from .label_values import CheckLabelValues, CheckLabelValuesd
from .loader_workers import default_num_workers
from .pairing import index_folder_pair, pair_by_name
from .nifti_volumes import index_nifti_volumes
from .oct_bscans import (
    BSCAN_INDEX_KEY,
    BScanIterd,
    bscan_png_volume_transforms,
    oct_bscan_dataset,
    oct_normalisation,
    oct_volume_transforms,
)
from .oct_slice_inference import bscan_slice_inferer
from .oct_splits import (
    group_bscans_by_volume,
    oct_semi_supervised_splits,
    summarize_repeated_splits,
    volume_bscan_items,
)
from .pool_worker_shutdown import wait_for_pool_workers
from .polyp_split import polyp_split
from .pranet import PRANET_URL, index_pranet, list_pranet_test_sets
from .retouch import RETOUCH_CLASSES, RETOUCH_URL, index_retouch
from .splits import make_splits, read_id_list, select_ids, split_train_val
from .synthetic_glas import make_synthetic_glas
from .synthetic_oct import make_synthetic_retouch, synthetic_oct_volume, write_bscan_pngs, write_metaimage_volume
from .synthetic_polyps import make_synthetic_polyps
from .tiff_reader import TiffFileReader

__all__ = [
    "index_bscan_folders",
    "ImageLevelLabels",
    "ImageLevelLabelsd",
    "index_nifti_volumes",
    "BSCAN_INDEX_KEY",
    "BScanIterd",
    "bscan_png_volume_transforms",
    "oct_bscan_dataset",
    "oct_normalisation",
    "oct_volume_transforms",
    "bscan_slice_inferer",
    "group_bscans_by_volume",
    "oct_semi_supervised_splits",
    "summarize_repeated_splits",
    "volume_bscan_items",
    "RETOUCH_CLASSES",
    "RETOUCH_URL",
    "index_retouch",
    "make_synthetic_retouch",
    "synthetic_oct_volume",
    "write_bscan_pngs",
    "write_metaimage_volume",
    "metaimage_size",
    "read_metaimage_header",
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
