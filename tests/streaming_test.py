"""The streaming ImageNet pipeline: transforms, batch order, resume, every
evaluation example once across devices and hosts, and two training steps of
the ImageNet preset at tiny width on mocked TFDS data (no download, no
TensorFlow)."""

import numpy as np
import pytest

from nasjax import configs
from nasjax import genotype as genotype_lib
from nasjax.data import pipeline
from nasjax.data import streaming


class _Source:
  """Examples whose label is their index; image i is a horizontal gradient
  (left dark, right bright) of a size that varies with i."""

  def __init__(self, n):
    self.n = n

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    h, w = 40 + 7 * (i % 5), 60 + 11 * (i % 3)
    row = np.linspace(0, 255, w).astype(np.uint8)
    image = np.repeat(np.broadcast_to(row[None, :, None], (h, w, 1)), 3, -1)
    return {'image': image, 'label': i}


def test_random_resized_crop_stays_in_its_ranges():
  """Every box lies inside the image; when a draw fits, its area fraction
  is in [0.08, 1] and its aspect ratio in [3/4, 4/3] (up to rounding); an
  image too elongated for any draw gets the centre crop at the nearest
  allowed ratio."""
  rng = np.random.default_rng(0)
  fractions, ratios = [], []
  for _ in range(500):
    left, top, w, h = streaming.random_resized_crop_box(rng, 300, 200)
    assert 0 <= left and left + w <= 300 and 0 <= top and top + h <= 200
    fractions.append(w * h / (300 * 200))
    ratios.append(w / h)
  assert 0.08 * 0.95 <= min(fractions) and max(fractions) <= 1.0
  assert 0.74 <= min(ratios) and max(ratios) <= 1.35
  assert min(fractions) < 0.2 and max(fractions) > 0.8  # The whole range.
  # No draw of at least 90 % of a 4000 x 10 image fits: the fallback.
  left, top, w, h = streaming.random_resized_crop_box(
      np.random.default_rng(1), 4000, 10, scale=(0.9, 1.0))
  assert (w, h) == (13, 10) and (left, top) == ((4000 - 13) // 2, 0)


def test_train_transform_flips_half_and_eval_is_deterministic():
  """Without colour jitter, about half the training crops of a left-to-right
  gradient come out mirrored; the evaluation transform is the centre crop of
  the 256-resized image, the same every time."""
  image = _Source(1)[0]['image']
  flipped = 0
  for seed in range(200):
    out = streaming.train_transform(image, np.random.default_rng(seed),
                                    size=32, jitter=(0, 0, 0, 0))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    flipped += out[:, 0].mean() > out[:, -1].mean()
  assert 60 <= flipped <= 140, flipped
  a = streaming.eval_transform(image, size=32, resize=40)
  np.testing.assert_array_equal(a, streaming.eval_transform(image, size=32,
                                                            resize=40))
  assert a[:, 0].mean() < a[:, -1].mean()


def test_colour_jitter_changes_colours_within_bounds():
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  image = Image.fromarray(np.full((8, 8, 3), (200, 80, 40), np.uint8))
  outs = [np.asarray(streaming.color_jitter(image, rng, 0.4, 0.4, 0.4, 0.2))
          for _ in range(20)]
  assert len({o.tobytes() for o in outs}) > 10
  bright = [np.asarray(streaming.color_jitter(image, rng, 0.4, 0, 0, 0))
            for _ in range(50)]
  means = np.asarray([b.mean() for b in bright]) / np.asarray(image).mean()
  assert 0.55 <= means.min() and means.max() <= 1.45  # factor in [0.6, 1.4]


def test_resume_gives_the_same_batches_whatever_the_threads():
  """A stream started at step 5 yields exactly the batches a stream from 0
  yields at steps 5 and 6 (each example's augmentation is seeded by seed,
  epoch and index), with 4 threads or 1; the order is the in-memory
  pipeline's."""
  split = streaming.StreamingSplit(_Source(24), True, size=16, workers=4)
  one = streaming.StreamingSplit(_Source(24), True, size=16, workers=1)
  from_0 = pipeline.batches(split, 4, seed=3)
  first = [next(from_0) for _ in range(7)]
  resumed = pipeline.batches(one, 4, seed=3, start_step=5)
  for want in first[5:]:
    step, got = next(resumed)
    assert step == want[0]
    np.testing.assert_array_equal(got['image'], want[1]['image'])
    np.testing.assert_array_equal(got['label'], want[1]['label'])
  # The same examples, in the same order, as an in-memory split's batches.
  memory = pipeline.Split(np.zeros((24, 1, 1, 3), np.uint8),
                          np.arange(24, dtype=np.int32))
  mem_it = pipeline.batches(memory, 4, seed=3)
  for step, batch in first:
    assert next(mem_it)[1]['label'].tolist() == batch['label'].tolist(), step


@pytest.mark.parametrize('global_batch,hosts', [(3, 1), (8, 1), (8, 2)])
def test_evaluation_reads_every_example_once(global_batch, hosts):
  """Over all hosts and batches, the unmasked labels are each example once
  (global batches of 3 for 1 device, 8 for 8 devices, and 8 over 2
  simulated hosts of 4 rows each); every batch has the static shape."""
  split = streaming.StreamingSplit(_Source(21), False, size=8, resize=10)
  seen = []
  for host in range(hosts):
    for b in pipeline.eval_batches(split, global_batch, process_index=host,
                                   process_count=hosts):
      assert b['image'].shape == (global_batch // hosts, 8, 8, 3)
      seen += b['label'][b['mask'] > 0].tolist()
  assert sorted(seen) == list(range(21))


def test_imagenet_preset_trains_two_steps_on_mocked_tfds(tmp_path):
  """The 'imagenet' retraining preset at tiny width reads mocked
  imagenet2012 through `get_dataset` (ArrayRecord data source, no
  TensorFlow), trains two steps on 8 devices and evaluates the 20
  validation images, each once (two batches of 16, the second padded)."""
  tfds = pytest.importorskip('tensorflow_datasets')
  from nasjax.final import train  # pylint: disable=g-import-not-at-top
  config = configs.retrain('imagenet')
  config.model.channels, config.model.layers = 4, 3
  config.model.auxiliary = False
  config.batch_size, config.eval_batch_size = 8, 16
  config.max_steps, config.num_devices = 2, 8
  config.data.workers = 2
  config.data.data_dir = str(tmp_path / 'tfds')
  with tfds.testing.mock_data(num_examples=20,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    ds = pipeline.get_dataset(config.data.name, config.data.data_dir,
                              config.data.image_shape,
                              stream={'workers': 2, 'prefetch': 1})
    assert ds.num_classes == 1000 and ds.image_shape == (224, 224, 3)
    result = train.train(config, None, ds, genotype_lib.DARTS_V2,
                         progress='none')
  assert result.status == 'completed'
  assert result.summary['step'] == 2
  assert np.isfinite(result.test_loss) and result.test_accuracy is not None
  assert result.history[-1].test['examples'] == 20


def test_imagenet_without_a_directory_names_the_field():
  with pytest.raises(pipeline.DataError, match='config.data.data_dir'):
    pipeline.get_dataset('tfds:imagenet2012', None)


def test_bad_stream_settings_name_the_field():
  from nasjax import config_checks, errors  # pylint: disable=g-import-not-at-top
  config = configs.retrain('imagenet')
  config_checks.check_train_config(config, 8)
  for field, value in (('workers', -1), ('prefetch', 0)):
    bad = configs.retrain('imagenet')
    bad.data[field] = value
    with pytest.raises(errors.ConfigError, match=f'data.{field}'):
      config_checks.check_train_config(bad, 8)


def test_training_crops_differ_per_epoch_and_repeat_within_one():
  """Example 3 read in epochs 0, 1 and 2: three different augmentations;
  read twice in one epoch (a resumed run): the same."""
  split = streaming.StreamingSplit(_Source(8), train=True, size=32,
                                   jitter=(0.0, 0.0, 0.0, 0.0))
  images = [split.example(3, seed=5, epoch=e)[0] for e in range(3)]
  for i in range(3):
    for j in range(i):
      assert not np.array_equal(images[i], images[j]), (i, j)
  np.testing.assert_array_equal(split.example(3, seed=5, epoch=1)[0],
                                images[1])
  assert not np.array_equal(split.example(3, seed=6, epoch=1)[0], images[1])


def test_evaluation_resize_and_centre_crop_match_the_geometry():
  """An 80 x 50 image whose red channel is 3x and green channel 4y: the
  shorter side resized to 40 (80 x 50 -> 64 x 40, a factor 1.25) and the
  centre 32 x 32 kept (offsets 16 and 4). A bilinear resize keeps a linear
  ramp linear away from the borders, so output pixel (r, c) holds the ramp
  at the source point ((c + 16.5) 1.25 - 0.5, (r + 4.5) 1.25 - 0.5), to
  within uint8 rounding; an offset or a size off by one pixel moves it by
  3.75 or 5."""
  y, x = np.mgrid[0:50, 0:80]
  image = np.stack([3 * x, 4 * y, np.zeros_like(x)], -1).astype(np.uint8)
  out = streaming.eval_transform(image, size=32, resize=40).astype(float)
  assert out.shape == (32, 32, 3)
  r, c = np.mgrid[0:32, 0:32]
  np.testing.assert_allclose(out[..., 0], 3 * ((c + 16.5) * 1.25 - 0.5),
                             atol=1.0)
  np.testing.assert_allclose(out[..., 1], 4 * ((r + 4.5) * 1.25 - 0.5),
                             atol=1.0)
