"""The UCI handwritten digits (8x8 grayscale, 1,797 images, 10 classes).

Real data that ships inside scikit-learn, so a search runs on a fresh offline
machine with no download. Pixel values 0..16 are scaled to 0..255. The last
20 % (360 images) is the test split.
"""

import numpy as np

from nasjax.data import pipeline


def load() -> pipeline.Dataset:
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  d = datasets.load_digits()
  images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = d.target.astype(np.int32)
  n_test = len(labels) // 5
  train = pipeline.Split(images[:-n_test], labels[:-n_test])
  mean, std = pipeline.channel_stats(train.images)
  return pipeline.Dataset('digits', train,
                          pipeline.Split(images[-n_test:], labels[-n_test:]),
                          10, mean, std)
