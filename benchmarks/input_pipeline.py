r"""Images per second the ImageNet input pipeline delivers, and the training
step's, at the same batch: does this host keep up with its accelerator?

  python benchmarks/input_pipeline.py --data_dir=/data/tfds --workers=0,8,16
  python benchmarks/input_pipeline.py --workers=1,2    # no ImageNet at hand

With --data_dir, the prepared `imagenet2012` (TFDS array_record files). Without
it, a stand-in source of random JPEGs at ImageNet's typical size (500 x 375,
quality 90), decoded by PIL in the same worker threads as the real data, so
the decode and augmentation cost is comparable. For each --workers value
(0: one per core) the training stream (random resized crop, flip, colour
jitter) runs --batches global batches of --batch after a warm-up batch, in
one host process. Then, unless --nostep, the training step of the
'imagenet' retraining preset (DARTS_V2, C=48, 14 cells, or --channels /
--layers) at the same per-host batch on this host's devices, on uint8
images already in memory. One JSON line per measurement.
"""

import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Prepared TFDS directory '
                                'with imagenet2012; none: random JPEGs.')
_WORKERS = flags.DEFINE_string('workers', '0', 'Comma-separated thread '
                               'counts (0: one per core).')
_BATCH = flags.DEFINE_integer('batch', 128, 'Global batch (this host).')
_BATCHES = flags.DEFINE_integer('batches', 5, 'Timed batches per setting.')
_STEP = flags.DEFINE_bool('step', True, 'Also time the training step.')
_CHANNELS = flags.DEFINE_integer('channels', 48, 'Network C for the step.')
_LAYERS = flags.DEFINE_integer('layers', 14, 'Network cells for the step.')


class _Jpegs:
  """A stand-in source: `n` random 500 x 375 JPEGs, decoded on access."""

  def __init__(self, n=64):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(0)
    self.blobs = []
    for _ in range(n):
      # Smooth noise compresses like a photograph, not like static.
      small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
      img = Image.fromarray(small).resize((500, 375), Image.BICUBIC)
      buf = io.BytesIO()
      img.save(buf, 'JPEG', quality=90)
      self.blobs.append(buf.getvalue())
    self.n = 1_281_167  # ImageNet's training split, for the permutation.

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    image = Image.open(io.BytesIO(self.blobs[i % len(self.blobs)]))
    return {'image': np.asarray(image.convert('RGB')), 'label': i % 1000}


def main(argv):
  del argv
  from nasjax import platform  # pylint: disable=g-import-not-at-top
  platform.setup()
  import jax  # pylint: disable=g-import-not-at-top
  from nasjax.data import pipeline
  from nasjax.data import streaming

  if _DATA_DIR.value:
    source = pipeline.get_dataset('tfds:imagenet2012',
                                  _DATA_DIR.value).train.source
    what = f'imagenet2012 in {_DATA_DIR.value}'
  else:
    source, what = _Jpegs(), 'random 500x375 JPEGs'
  batch = _BATCH.value
  last = None
  for workers in (int(w) for w in _WORKERS.value.split(',')):
    split = streaming.StreamingSplit(source, True, workers=workers)
    it = pipeline.batches(split, batch, seed=0)
    next(it)  # Warm-up: threads started, first batches in flight.
    t = time.perf_counter()
    for _ in range(_BATCHES.value):
      _, last = next(it)
    seconds = time.perf_counter() - t
    print(json.dumps({
        'check': 'input_pipeline', 'source': what, 'batch': batch,
        'workers': workers or os.cpu_count(),
        'images_per_s': round(_BATCHES.value * batch / seconds, 1),
        'cpus': os.cpu_count()}), flush=True)

  if not _STEP.value:
    return
  import functools  # pylint: disable=g-import-not-at-top
  from nasjax import configs
  from nasjax import genotype as genotype_lib
  from nasjax import parallel
  from nasjax.final import step as step_lib
  from nasjax.final import train
  import numpy as np  # pylint: disable=g-import-not-at-top
  config = configs.retrain('imagenet')
  config.model.channels, config.model.layers = _CHANNELS.value, _LAYERS.value
  config.batch_size = batch
  mesh = parallel.make_mesh()
  ds = pipeline.Dataset('stand-in', pipeline.Split(last['image'],
                                                   last['label']),
                        pipeline.Split(last['image'][:1], last['label'][:1]),
                        1000, streaming.IMAGENET_MEAN, streaming.IMAGENET_STD)
  model, tx, prep, _, drop_path = train.build(config, ds, genotype_lib.DARTS_V2,
                                              1)
  state = train.init_state(model, tx, ds.image_shape, 0, mesh)
  t = config.train
  step = parallel.jit_step(functools.partial(
      step_lib.train_step, model=model, preprocess=prep, drop_path=drop_path,
      aux_weight=t.aux_weight, label_smoothing=t.label_smoothing), mesh)
  b = parallel.shard_batch({'image': last['image'], 'label': last['label']},
                           mesh)
  t0 = time.perf_counter()
  state, metrics = step(state, b)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(3):
    t0 = time.perf_counter()
    state, metrics = step(state, b)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  print(json.dumps({
      'check': 'imagenet_train_step', 'batch': batch,
      'channels': _CHANNELS.value, 'layers': _LAYERS.value,
      'devices': int(mesh.devices.size),
      'device': jax.devices()[0].device_kind,
      'compile_s': round(compile_s, 1),
      'images_per_s': round(batch / float(np.median(times)), 1)}),
        flush=True)


if __name__ == '__main__':
  app.run(main)
