"""Datasets as arrays, the DARTS search split, and deterministic batches.

The batch order is a pure function of (seed, step): epoch e uses the
permutation `default_rng([seed, e])`, so resuming at a step reproduces the
exact batches of an uninterrupted run, and the data position a checkpoint
needs is just the step. For multi-host runs every host draws the same global
batch indices and keeps its contiguous slice (`process_index`), so the global
batch does not depend on the number of hosts.

Synopsis:

  ds = get_dataset('digits')                    # needs no download
  train, val = search_split(ds.train, 0.5)       # DARTS: first / second half
  for step, batch in batches(train, 64, seed=0, start_step=0): ...
"""

import dataclasses
import functools
from typing import Iterator

import numpy as np

from nasjax import errors


class DataError(errors.UserError):
  """Missing, corrupt or mismatched data, with the offending path or field."""


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # uint8 [N, H, W, C]
  labels: np.ndarray  # int32 [N]

  def __post_init__(self):
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise DataError(f'images must be uint8 [N, H, W, C], got '
                      f'{self.images.dtype} {self.images.shape}.')
    if self.labels.shape != self.images.shape[:1]:
      raise DataError(f'{len(self.labels)} labels for {len(self.images)} '
                      'images.')

  def __len__(self):
    return len(self.labels)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])


@dataclasses.dataclass(frozen=True)
class Dataset:
  name: str
  train: Split          # or a `streaming.StreamingSplit` (read lazily)
  test: Split
  num_classes: int
  mean: tuple[float, ...]  # per channel, of images / 255
  std: tuple[float, ...]

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train.image_shape)


def check_image_shape(ds: Dataset, image_shape) -> None:
  """A clear error when the config's [H, W, C] is not the dataset's."""
  if tuple(image_shape) != ds.image_shape:
    raise DataError(f'Dataset {ds.name!r} has images of shape '
                    f'{ds.image_shape} but config.data.image_shape is '
                    f'{tuple(image_shape)}.')


def search_split(split: Split, portion: float) -> tuple[Split, Split]:
  """DARTS's split: the first `portion` trains weights, the rest alpha."""
  n = int(len(split) * portion)
  if not 0 < n < len(split):
    raise DataError(f'train_portion={portion} leaves an empty half of '
                    f'{len(split)} examples.')
  return (Split(split.images[:n], split.labels[:n]),
          Split(split.images[n:], split.labels[n:]))


def bilevel_halves(train: Split, portion: float, global_batch: int,
                   epochs: int, max_steps: int = 0
                   ) -> tuple[Split, Split, int, int]:
  """(weights' half, alpha's half, steps per epoch, total steps) of a
  bilevel search: `search_split`, an epoch as many steps as the smaller
  half gives full batches, `max_steps` (if set) capping the total."""
  weights, alpha = search_split(train, portion)
  per_epoch = min(
      steps_per_epoch(weights, global_batch, "the weights' part of the "
                      'training split (data.train_portion)'),
      steps_per_epoch(alpha, global_batch, "alpha's part of the training "
                      'split (data.train_portion)'))
  total = epochs * per_epoch
  if max_steps:
    total = min(total, max_steps)
  return weights, alpha, per_epoch, total


def steps_per_epoch(split: Split, global_batch: int,
                    what: str = 'the split') -> int:
  """Full batches per epoch (the remainder of each epoch is dropped);
  `what` names the split in the error when not one batch fits."""
  steps = len(split) // global_batch
  if steps == 0:
    raise DataError(f'Global batch {global_batch} (config.batch_size) is '
                    f'larger than {what} ({len(split)} examples).')
  return steps


def batches(split: Split, global_batch: int, *, seed: int, start_step: int = 0,
            process_index: int = 0, process_count: int = 1
            ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
  """Yields (step, this host's part of the global batch) from `start_step` on.

  Args:
    split: the examples.
    global_batch: examples per step over all hosts.
    seed: base seed of the per-epoch permutations.
    start_step: first step to yield (resume position).
    process_index, process_count: this host and the number of hosts.
  """
  _check_hosts(global_batch, process_count)
  if hasattr(split, 'stream_batches'):  # A streaming split reads lazily.
    yield from split.stream_batches(
        global_batch, seed=seed, start_step=start_step,
        process_index=process_index, process_count=process_count)
    return
  steps_per_epoch(split, global_batch)
  step = start_step
  while True:
    idx = batch_indices(len(split), global_batch, seed, step, process_index,
                        process_count)
    yield step, {'image': split.images[idx], 'label': split.labels[idx]}
    step += 1


def _check_hosts(global_batch: int, process_count: int) -> None:
  if global_batch % process_count:
    raise DataError(f'Global batch {global_batch} does not divide across '
                    f'{process_count} hosts.')


@functools.lru_cache(maxsize=2)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(n: int, global_batch: int, seed: int, step: int,
                  process_index: int = 0, process_count: int = 1
                  ) -> np.ndarray:
  """This host's example indices (sorted) of training step `step`: epoch
  step // (n // global_batch) permutes the n examples with seed [seed,
  epoch]; each step takes the next global batch, each host its slice."""
  per_epoch = n // global_batch
  epoch, k = divmod(step, per_epoch)
  idx = _permutation(n, seed, epoch)[k * global_batch:(k + 1) * global_batch]
  per_host = global_batch // process_count
  return np.sort(idx[process_index * per_host:(process_index + 1) * per_host])


def eval_indices(n: int, global_batch: int, begin: int,
                 process_index: int = 0, process_count: int = 1
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(this host's indices, mask) of the evaluation batch starting at
  `begin`: past the end, index 0 with mask 0."""
  idx = np.arange(begin, begin + global_batch)
  mask = (idx < n).astype(np.float32)
  idx = np.where(idx < n, idx, 0)
  per_host = global_batch // process_count
  part = slice(process_index * per_host, (process_index + 1) * per_host)
  return idx[part], mask[part]


def eval_batches(split: Split, global_batch: int, *, process_index: int = 0,
                 process_count: int = 1
                 ) -> Iterator[dict[str, np.ndarray]]:
  """Every example once, in order, in fixed-size batches with a `mask`.

  The last batch is padded (with copies of example 0, mask 0) so every batch
  has the static shape the compiled step expects.
  """
  _check_hosts(global_batch, process_count)
  if hasattr(split, 'stream_eval_batches'):
    yield from split.stream_eval_batches(
        global_batch, process_index=process_index,
        process_count=process_count)
    return
  for begin in range(0, len(split), global_batch):
    idx, mask = eval_indices(len(split), global_batch, begin, process_index,
                             process_count)
    yield {'image': split.images[idx], 'label': split.labels[idx],
           'mask': mask}


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], ...]:
  x = images.astype(np.float64) / 255.0
  return (tuple(x.mean((0, 1, 2)).tolist()), tuple(x.std((0, 1, 2)).tolist()))


def from_arrays(train_images, train_labels, test_images, test_labels, *,
                name: str = 'arrays', num_classes: int | None = None
                ) -> Dataset:
  """A `Dataset` from your own arrays: uint8 images [N, H, W, C], int labels.

  The normalisation constants are the training images' per-channel mean and
  standard deviation; `num_classes` defaults to the largest label + 1.
  """
  def split(images, labels, which):
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8:
      raise DataError(f'{which} images must be uint8 [N, H, W, C] (0..255), '
                      f'got {images.dtype} {images.shape}.')
    if not np.issubdtype(labels.dtype, np.integer):
      raise DataError(f'{which} labels must be integers, got {labels.dtype}.')
    return Split(images, labels.astype(np.int32))

  train = split(train_images, train_labels, 'training')
  test = split(test_images, test_labels, 'test')
  if train.images.shape[1:] != test.images.shape[1:]:
    raise DataError(f'Training images are {train.images.shape[1:]} but test '
                    f'images are {test.images.shape[1:]}.')
  top = int(max(train.labels.max(initial=0), test.labels.max(initial=0)))
  low = int(min(train.labels.min(initial=0), test.labels.min(initial=0)))
  num_classes = top + 1 if num_classes is None else num_classes
  if low < 0 or top >= num_classes:
    raise DataError(f'Labels must lie in [0, {num_classes}); they span '
                    f'[{low}, {top}].')
  mean, std = channel_stats(train.images)
  return Dataset(name, train, test, num_classes, mean, std)


def get_dataset(name: str, data_dir: str | None = None,
                image_shape: tuple[int, ...] | None = None, *,
                data_dir_field: str = 'config.data.data_dir',
                stream: dict | None = None) -> Dataset:
  """Loads a dataset by name: 'digits', 'cifar10' or 'tfds:<name>'.

  Args:
    name: 'digits' (ships with scikit-learn, no download), 'cifar10' (the
      extracted `cifar-10-batches-py` directory at `data_dir`) or
      'tfds:cifar10' (a prepared TFDS directory at `data_dir`, no TensorFlow).
    data_dir: where the data lives (ignored by 'digits').
    image_shape: if given, the [H, W, C] the config expects; a mismatch is an
      error naming both.
    data_dir_field: the config field that sets `data_dir`, named by the
      error when a dataset that needs a directory has none.
    stream: for ImageNet ('tfds:imagenet2012' etc., read lazily:
      `streaming.load_tfds`), its `workers` and `prefetch`.
  """
  from nasjax.data import cifar, digits  # pylint: disable=g-import-not-at-top
  if name == 'digits':
    ds = digits.load()
  elif name == 'cifar10':
    if not data_dir:
      raise DataError(f"Dataset 'cifar10' needs its directory: set "
                      f'--{data_dir_field}=/path/to/cifar-10-batches-py (the '
                      'extracted CIFAR-10 python batches; data/README.md '
                      'in the repository, or nasjax.data.download_cifar10).')
    ds = cifar.load_batches_dir(data_dir)
  elif name.startswith('tfds:imagenet'):
    from nasjax.data import streaming  # pylint: disable=g-import-not-at-top
    ds = streaming.load_tfds(name[len('tfds:'):], data_dir, **(stream or {}))
  elif name.startswith('tfds:'):
    ds = cifar.load_tfds(name[len('tfds:'):], data_dir)
  else:
    raise DataError(f"Unknown dataset {name!r}; valid: 'digits', 'cifar10', "
                    "'tfds:<name>'.")
  if image_shape is not None:
    check_image_shape(ds, image_shape)
  return ds
