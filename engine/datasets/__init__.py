"""Datasets: the committed Fashion-MNIST test split (`fashion_mnist`), the ImageNet class list
(`imagenet`) and a user's own labelled folder or zip (`folders`, its label readers in `labels` and zips in `zips`,
re-exported here)."""

from engine.datasets.folders import (
    BANK_IMAGES,
    MASKS_FOLDER,
    MAX_FILES,
    WNID_FILE,
    DatasetInfo,
    LabelledImages,
    as_domain,
    class_indices,
    evaluation_split,
    fits,
    imagenet_wnids,
    interleaved,
    list_datasets,
    open_dataset,
    tensors,
    unmapped_labels,
)
from engine.datasets.labels import IMAGE_SUFFIXES, MAX_LABEL_FILE_BYTES, Source
from engine.datasets.zips import (
    MAX_RATIO,
    MAX_TOTAL_PIXELS,
    MAX_UNZIPPED_BYTES,
    MAX_ZIP_BYTES,
    RATIO_FLOOR,
    open_zip,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "WNID_FILE",
    "MAX_FILES",
    "MAX_ZIP_BYTES",
    "MAX_UNZIPPED_BYTES",
    "MAX_RATIO",
    "RATIO_FLOOR",
    "MAX_TOTAL_PIXELS",
    "MAX_LABEL_FILE_BYTES",
    "MASKS_FOLDER",
    "BANK_IMAGES",
    "Source",
    "LabelledImages",
    "DatasetInfo",
    "open_dataset",
    "list_datasets",
    "open_zip",
    "imagenet_wnids",
    "unmapped_labels",
    "fits",
    "class_indices",
    "tensors",
    "evaluation_split",
    "interleaved",
    "as_domain",
]
