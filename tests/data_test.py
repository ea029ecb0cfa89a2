"""Data readers on the real CIFAR-10 subset, the bundled digits, and errors."""

import os
import pickle

import numpy as np
import pytest

from nasjax import data
from nasjax.data import pipeline
from tests.conftest import CIFAR_DIR
from tests.conftest import require_data


def test_cifar_batches_reader_on_real_subset():
  require_data(CIFAR_DIR)
  ds = data.get_dataset('cifar10', CIFAR_DIR, (32, 32, 3))
  assert ds.train.images.shape == (5 * 1017, 32, 32, 3)
  assert ds.test.images.shape == (1017, 32, 32, 3)
  assert ds.train.images.dtype == np.uint8
  counts = np.bincount(ds.train.labels, minlength=10)
  assert counts.sum() == 5085 and counts.min() > 5 * 80
  # First image of data_batch_1, red channel row 0, read independently.
  with open(os.path.join(CIFAR_DIR, 'data_batch_1'), 'rb') as f:
    raw = pickle.load(f, encoding='bytes')
  np.testing.assert_array_equal(ds.train.images[0, 0, :, 0],
                                np.asarray(raw[b'data'][0][:32]))
  assert ds.train.labels[0] == raw[b'labels'][0]


def test_digits_ships_without_download():
  ds = data.get_dataset('digits', image_shape=(8, 8, 1))
  assert len(ds.train) + len(ds.test) == 1797 and ds.num_classes == 10
  assert ds.train.images.max() == 255


def test_errors_name_the_path_or_field(tmp_path):
  with pytest.raises(data.DataError, match=str(tmp_path / 'nope')):
    data.get_dataset('cifar10', str(tmp_path / 'nope'))
  (tmp_path / 'data_batch_1').write_bytes(b'not a pickle')
  with pytest.raises(data.DataError, match='Corrupt.*data_batch_1'):
    data.get_dataset('cifar10', str(tmp_path))
  with pytest.raises(data.DataError, match='image_shape is \\(32, 32, 3\\)'):
    data.get_dataset('digits', image_shape=(32, 32, 3))
  with pytest.raises(data.DataError, match="Unknown dataset 'mnist'"):
    data.get_dataset('mnist')
  with pytest.raises(data.DataError, match='Cannot open TFDS'):
    data.get_dataset('tfds:cifar10', str(tmp_path))


def test_search_split_and_deterministic_resumable_batches():
  ds = data.get_dataset('digits')
  train, val = pipeline.search_split(ds.train, 0.5)
  assert len(train) + len(val) == len(ds.train)
  np.testing.assert_array_equal(val.labels, ds.train.labels[len(train):])
  full = pipeline.batches(train, 32, seed=0)
  seq = [next(full) for _ in range(30)]
  resumed = pipeline.batches(train, 32, seed=0, start_step=25)
  for step, b in seq[25:]:
    s, rb = next(resumed)
    assert s == step
    np.testing.assert_array_equal(rb['image'], b['image'])
  # Two hosts' halves make the one-host global batch.
  h0 = next(pipeline.batches(train, 32, seed=0, process_count=2))[1]
  h1 = next(pipeline.batches(train, 32, seed=0, process_index=1,
                             process_count=2))[1]
  both = np.sort(np.concatenate([h0['label'], h1['label']]))
  np.testing.assert_array_equal(both, np.sort(seq[0][1]['label']))
  with pytest.raises(data.DataError, match='does not divide across 3 hosts'):
    next(pipeline.batches(train, 32, seed=0, process_count=3))


def test_unprepared_imagenet_names_the_directory(tmp_path):
  where = str(tmp_path / 'tfds')
  with pytest.raises(data.DataError, match=f'imagenet2012.*{where}'):
    data.get_dataset('tfds:imagenet2012', where)
