"""Datasets as in-memory arrays, the DARTS search split, deterministic batches.

Every dataset is a `Dataset`: uint8 images [N, H, W, C] and int32 labels [N]
per split, held in host memory (CIFAR-10 is 180 MB), and the per-channel
normalisation constants. Batches are drawn by `nasjax.data.pipeline`.

  ds = data.load('digits')                            # ships with scikit-learn
  ds = data.load('cifar10', '/data/cifar-10-batches-py')
  ds = data.from_arrays(x_train, y_train, x_test, y_test)   # your own arrays
  path = data.download_cifar10('/content/data')        # needs internet
"""
from nasjax.data.pipeline import (DataError, Dataset, Split, batches,
                                  from_arrays, get_dataset, search_split)
from nasjax.data.cifar import download_cifar10

load = get_dataset
