"""Streaming image datasets (ImageNet): read lazily, decoded and augmented on
the host in worker threads, batched ahead of the training loop.

A `StreamingSplit` wraps a random-access source (`tfds.data_source`: a
prepared TFDS directory in ArrayRecord form, read without TensorFlow) and
takes the place of an in-memory `pipeline.Split`: `pipeline.batches` and
`pipeline.eval_batches` hand it their work, with the same batch order (a
permutation per epoch from [seed, epoch], each host taking its slice of
every global batch), so a resumed run reads the same next batches. Each
example's augmentation draws from its own generator, seeded by (seed, epoch,
index): the batches do not depend on which thread did what.

Training examples (the reference's `cnn/train_imagenet.py`): a random
resized crop (scale 0.08-1, aspect ratio 3/4-4/3, as torchvision's) to 224,
a horizontal flip with probability 1/2, colour jitter (brightness, contrast,
saturation 0.4, hue 0.2, in a random order). Evaluation: the shorter side
resized to 256, the centre 224 x 224 crop. Both yield uint8 images; the
training step normalises them on the device (`augment.make_preprocess`,
with ImageNet's mean and standard deviation, no further crop or flip).

Decoding (PIL, in the source) and the transforms run in a thread pool of
`workers` threads (PIL releases the interpreter lock while it decodes and
resizes); `prefetch` global batches are kept in flight, so the next batches
are ready while the accelerator runs the current step.

  ds = streaming.load_tfds('imagenet2012', '/data/tfds')
  for step, batch in pipeline.batches(ds.train, 256, seed=0): ...
"""

import collections
import concurrent.futures
import dataclasses
import os
from typing import Any, Iterator, Sequence

import numpy as np

from nasjax.data import pipeline

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_resized_crop_box(rng: np.random.Generator, width: int, height: int,
                            scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
                            ) -> tuple[int, int, int, int]:
  """(left, top, width, height) of torchvision's RandomResizedCrop: up to 10
  draws of an area fraction in `scale` and a log-uniform aspect ratio in
  `ratio`, the first that fits; else the centre crop at the nearest allowed
  ratio."""
  area = width * height
  log_ratio = np.log(ratio)
  for _ in range(10):
    target = area * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(*log_ratio))
    w = int(round(np.sqrt(target * aspect)))
    h = int(round(np.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return (int(rng.integers(0, width - w + 1)),
              int(rng.integers(0, height - h + 1)), w, h)
  in_ratio = width / height
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    w, h = int(round(height * max(ratio))), height
  else:
    w, h = width, height
  return (width - w) // 2, (height - h) // 2, w, h


def color_jitter(image, rng: np.random.Generator, brightness: float,
                 contrast: float, saturation: float, hue: float):
  """torchvision's ColorJitter on a PIL RGB image: each factor uniform in
  [1 - b, 1 + b] (hue: a shift uniform in [-h, h] of the hue circle),
  applied in a random order."""
  from PIL import Image, ImageEnhance  # pylint: disable=g-import-not-at-top

  def shift_hue(img, amount):
    hsv = np.asarray(img.convert('HSV')).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) +
                   int(round(amount * 255))) % 256
    return Image.fromarray(hsv, 'HSV').convert('RGB')

  ops = []
  for strength, enhance in ((brightness, ImageEnhance.Brightness),
                            (contrast, ImageEnhance.Contrast),
                            (saturation, ImageEnhance.Color)):
    if strength:
      factor = rng.uniform(max(0.0, 1 - strength), 1 + strength)
      ops.append(lambda img, e=enhance, f=factor: e(img).enhance(f))
  if hue:
    amount = rng.uniform(-hue, hue)
    ops.append(lambda img, a=amount: shift_hue(img, a))
  for k in rng.permutation(len(ops)):
    image = ops[k](image)
  return image


def _rgb(image: np.ndarray):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  return Image.fromarray(image).convert('RGB')


def train_transform(image: np.ndarray, rng: np.random.Generator, *,
                    size: int = 224,
                    jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.2)
                    ) -> np.ndarray:
  """uint8 [H, W, C] -> uint8 [size, size, 3]: random resized crop,
  horizontal flip, colour jitter."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  img = _rgb(image)
  left, top, w, h = random_resized_crop_box(rng, *img.size)
  img = img.resize((size, size), Image.BILINEAR,
                   box=(left, top, left + w, top + h))
  if rng.random() < 0.5:
    img = img.transpose(Image.FLIP_LEFT_RIGHT)
  if any(jitter):
    img = color_jitter(img, rng, *jitter)
  return np.asarray(img, np.uint8)


def eval_transform(image: np.ndarray, *, size: int = 224,
                   resize: int = 256) -> np.ndarray:
  """uint8 [H, W, C] -> uint8 [size, size, 3]: the shorter side resized to
  `resize`, then the centre crop."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  img = _rgb(image)
  w, h = img.size
  scale = resize / min(w, h)
  w, h = max(size, int(round(w * scale))), max(size, int(round(h * scale)))
  img = img.resize((w, h), Image.BILINEAR)
  left, top = (w - size) // 2, (h - size) // 2
  return np.asarray(img.crop((left, top, left + size, top + size)), np.uint8)


@dataclasses.dataclass(eq=False)
class StreamingSplit:
  """A split read lazily from `source` (len(source), source[i] ->
  {'image': uint8 [H, W, C], 'label': int}), transformed on the host.

  Attributes:
    source: the random-access examples.
    train: training transforms (else evaluation ones).
    size: the output side; `resize`: the evaluation resize.
    jitter: brightness, contrast, saturation, hue (training).
    workers: decoding threads; 0: one per core.
    prefetch: global batches in flight ahead of the consumer.
  """
  source: Any
  train: bool
  size: int = 224
  resize: int = 256
  jitter: tuple[float, ...] = (0.4, 0.4, 0.4, 0.2)
  workers: int = 0
  prefetch: int = 2

  def __len__(self) -> int:
    return len(self.source)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (self.size, self.size, 3)

  def example(self, index: int, seed: int = 0, epoch: int = 0
              ) -> tuple[np.ndarray, int]:
    """(uint8 image, label) of example `index`, transformed; training
    transforms draw from a generator seeded by (seed, epoch, index)."""
    ex = self.source[int(index)]
    if self.train:
      rng = np.random.default_rng([seed, epoch, int(index)])
      image = train_transform(ex['image'], rng, size=self.size,
                              jitter=self.jitter)
    else:
      image = eval_transform(ex['image'], size=self.size, resize=self.resize)
    return image, int(ex['label'])

  def _stream(self, jobs: Iterator[tuple[Any, np.ndarray, int, int]]
              ) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
    """For jobs (key, indices, seed, epoch): (key, images, labels), in
    order, `prefetch` jobs decoded ahead in the thread pool."""
    workers = self.workers or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      pending = collections.deque()

      def submit(job):
        key, indices, seed, epoch = job
        pending.append((key, [pool.submit(self.example, i, seed, epoch)
                              for i in indices]))

      jobs = iter(jobs)
      for job in jobs:
        submit(job)
        if len(pending) > self.prefetch:
          break
      while pending:
        key, futures = pending.popleft()
        out = [f.result() for f in futures]
        nxt = next(jobs, None)
        if nxt is not None:
          submit(nxt)
        yield (key, np.stack([o[0] for o in out]),
               np.asarray([o[1] for o in out], np.int32))

  def stream_batches(self, global_batch: int, *, seed: int, start_step: int,
                     process_index: int, process_count: int
                     ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """`pipeline.batches` for this split (same order and host slices)."""
    per_epoch = pipeline.steps_per_epoch(self, global_batch)

    def jobs():
      step = start_step
      while True:
        epoch = step // per_epoch
        idx = pipeline.batch_indices(len(self), global_batch, seed, step,
                                     process_index, process_count)
        yield step, idx, seed, epoch
        step += 1

    for step, images, labels in self._stream(jobs()):
      yield step, {'image': images, 'label': labels}

  def stream_eval_batches(self, global_batch: int, *, process_index: int,
                          process_count: int
                          ) -> Iterator[dict[str, np.ndarray]]:
    """`pipeline.eval_batches` for this split: every example once, the
    last batch padded (copies of example 0, mask 0)."""
    def jobs():
      for begin in range(0, len(self), global_batch):
        idx, mask = pipeline.eval_indices(len(self), global_batch, begin,
                                          process_index, process_count)
        yield mask, idx, 0, 0

    for mask, images, labels in self._stream(jobs()):
      yield {'image': images, 'label': labels, 'mask': mask}


def load_tfds(name: str, data_dir: str | None, *, workers: int = 0,
              prefetch: int = 2, splits=('train', 'validation')
              ) -> pipeline.Dataset:
  """A prepared TFDS image dataset (ArrayRecord files, e.g. 'imagenet2012')
  as streaming splits: training with the training transforms, `splits[1]`
  (the test split of the `Dataset`) with the evaluation ones; ImageNet's
  normalisation constants."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if not data_dir:
    raise pipeline.DataError(
        f'tfds:{name} needs the prepared TFDS directory: set '
        '--config.data.data_dir (data/README.md says how to prepare it).')
  try:  # tfds raises several types for a missing dataset.
    train, test = (tfds.data_source(name, split=split, data_dir=data_dir,
                                    download=False) for split in splits)
  except Exception as e:  # pylint: disable=broad-except
    raise pipeline.DataError(
        f'Cannot read the TFDS dataset {name!r} in {data_dir}: {e} (it must '
        'be prepared in ArrayRecord form; data/README.md in the '
        'repository).') from None
  num_classes = train.dataset_info.features['label'].num_classes
  kw = dict(workers=workers, prefetch=prefetch)
  return pipeline.Dataset(f'tfds:{name}', StreamingSplit(train, True, **kw),
                          StreamingSplit(test, False, **kw), num_classes,
                          IMAGENET_MEAN, IMAGENET_STD)
