"""Data: the DeepLesion reader, its csv and splits, augmentation, and the synthetic generator."""

from fsd.data.deeplesion import DeepLesionDataset, collate_detection
from fsd.data.dl_info import DL_INFO_COLUMNS, KeySliceRecord, LesionRecord, read_dl_info

__all__ = [
    "DL_INFO_COLUMNS",
    "DeepLesionDataset",
    "KeySliceRecord",
    "LesionRecord",
    "collate_detection",
    "read_dl_info",
]
