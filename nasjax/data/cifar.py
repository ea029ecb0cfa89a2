"""CIFAR-10 from the extracted python batches, or from a prepared TFDS dir.

The batches reader needs nothing but numpy: it reads the layout of the
official `cifar-10-python.tar.gz` once extracted (data_batch_1..5, test_batch).
The TFDS path uses `tfds.data_source` (array_record files, random access,
no TensorFlow); prepare the data once on a machine with internet (BUILD.md).
Normalisation uses the reference's constants.
"""

import hashlib
import os
import pickle
import tarfile
import urllib.request

import numpy as np

from nasjax.data import pipeline

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
MD5 = 'c58f30108f718f92721af3b95e74349a'
_TRAIN_FILES = tuple(f'data_batch_{i}' for i in range(1, 6))


def _read_batch(path: str) -> pipeline.Split:
  try:
    with open(path, 'rb') as f:
      d = pickle.load(f, encoding='bytes')
    data = np.asarray(d[b'data'], np.uint8)
    labels = np.asarray(d[b'labels'], np.int32)
  except FileNotFoundError:
    raise pipeline.DataError(f'Missing CIFAR-10 batch file {path}.') from None
  except OSError as e:  # A directory, no permission, a read error.
    raise pipeline.DataError(f'Cannot read the CIFAR-10 batch file {path}: '
                             f'{e.strerror or e}.') from None
  except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError,
          AttributeError) as e:
    raise pipeline.DataError(f'Corrupt CIFAR-10 batch file {path}: '
                             f'{type(e).__name__}: {e}.') from None
  if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
    raise pipeline.DataError(f'Corrupt CIFAR-10 batch file {path}: data '
                             f'{data.shape}, {len(labels)} labels.')
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return pipeline.Split(np.ascontiguousarray(images), labels)


def load_batches_dir(data_dir: str | None) -> pipeline.Dataset:
  """Reads `data_dir` (the `cifar-10-batches-py` directory, or its parent)."""
  if not data_dir:
    raise pipeline.DataError("Dataset 'cifar10' needs config.data.data_dir "
                             '(the extracted cifar-10-batches-py directory).')
  if os.path.isdir(os.path.join(data_dir, 'cifar-10-batches-py')):
    data_dir = os.path.join(data_dir, 'cifar-10-batches-py')
  if not os.path.isdir(data_dir):
    raise pipeline.DataError(f'CIFAR-10 directory {data_dir} does not exist.')
  parts = [_read_batch(os.path.join(data_dir, f)) for f in _TRAIN_FILES]
  train = pipeline.Split(np.concatenate([p.images for p in parts]),
                         np.concatenate([p.labels for p in parts]))
  test = _read_batch(os.path.join(data_dir, 'test_batch'))
  return pipeline.Dataset('cifar10', train, test, 10, CIFAR10_MEAN,
                          CIFAR10_STD)


def _tfds_split(source, split: str, where: str) -> pipeline.Split:
  try:
    src = source[split]
  except KeyError:
    raise pipeline.DataError(f'{where} has no split {split!r}; it has '
                             f'{sorted(source)}.') from None
  n = len(src)
  items = src.__getitems__(list(range(n))) if n else []
  images = np.stack([np.asarray(e['image'], np.uint8) for e in items])
  labels = np.asarray([e['label'] for e in items], np.int32)
  return pipeline.Split(images, labels)


def load_tfds(name: str, data_dir: str | None) -> pipeline.Dataset:
  """Loads a prepared TFDS image-classification dataset (train and test)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = f'TFDS dataset {name!r} in {data_dir or "the default data_dir"}'
  try:
    source = tfds.data_source(name, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several types for a missing dataset.
    raise pipeline.DataError(f'Cannot open {where}: {e}. Prepare it first '
                             '(data/README.md in the repository).') from None
  train = _tfds_split(source, 'train', where)
  test = _tfds_split(source, 'test', where)
  if name == 'cifar10':
    mean, std = CIFAR10_MEAN, CIFAR10_STD
  else:
    mean, std = pipeline.channel_stats(train.images)
  num_classes = int(max(train.labels.max(), test.labels.max())) + 1
  return pipeline.Dataset(name, train, test, num_classes, mean, std)


def download_cifar10(directory: str) -> str:
  """Downloads and extracts the CIFAR-10 python batches (163 MB), once.

  Needs internet and nothing else (no TensorFlow). Returns the
  `cifar-10-batches-py` directory inside `directory`, for `load('cifar10',
  ...)` or `config.data.data_dir`. An existing extraction is reused.
  """
  target = os.path.join(directory, 'cifar-10-batches-py')
  if all(os.path.exists(os.path.join(target, f))
         for f in _TRAIN_FILES + ('test_batch',)):
    return target
  os.makedirs(directory, exist_ok=True)
  archive = os.path.join(directory, 'cifar-10-python.tar.gz')
  if not os.path.exists(archive):
    try:
      urllib.request.urlretrieve(URL, archive + '.part')
    except OSError as e:
      raise pipeline.DataError(f'Cannot download {URL}: {e}.') from None
    os.replace(archive + '.part', archive)
  with open(archive, 'rb') as f:
    digest = hashlib.md5(f.read()).hexdigest()
  if digest != MD5:
    os.remove(archive)
    raise pipeline.DataError(f'{archive} has MD5 {digest}, expected {MD5} '
                             '(a broken download; it was deleted, try again).')
  with tarfile.open(archive) as tar:
    tar.extractall(directory, filter='data')
  return target
