"""Input pipelines for nasjax (imported as `data.cifar`, `data.digits`, ...).

Every dataset is returned as a `Dataset`: uint8 images [N, H, W, C] and int32
labels [N] per split, held in host memory (CIFAR-10 is 180 MB), plus the
normalisation constants. Batches are then drawn by `data.pipeline`.
"""
from data.pipeline import Dataset, DataError, get_dataset, batches, search_split
