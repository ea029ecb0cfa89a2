"""A tiny search problem shared by the tests (compiled functions are reused)."""


import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from nasjax import augment
from nasjax import genotype as genotype_lib
from nasjax.darts import model as model_lib
from nasjax import optim
from nasjax.search_spaces import DartsCellSpace
from nasjax.train_state import SearchState

# Four ops: the zero op, a max-pool kink, the identity and one parametric op
# (ReLU, depthwise, 1x1, BN). dil_conv_3x3 rather than sep_conv_3x3 (which is
# that block twice): the second-order step compiles in 26 s instead of 37 s,
# and every op is checked on its own in ops_test / darts_model_test.
SPACE = DartsCellSpace(('none', 'max_pool_3x3', 'skip_connect', 'dil_conv_3x3'),
                       steps=2)
MODEL = model_lib.SearchNetwork(SPACE, channels=4, num_classes=10, layers=3)
IMAGE_SHAPE = (8, 8, 1)
# No augmentation: the exactness tests need a fixed input.
PREP = augment.make_preprocess(mean=(0.3,), std=(0.4,), crop_padding=0,
                               flip=False)
PREP64 = augment.make_preprocess(mean=(0.3,), std=(0.4,), crop_padding=0,
                                 flip=False, dtype=jnp.float64)


def schedule(lr):
  return optim.cosine_per_epoch(lr, lr / 10, epochs=4, steps_per_epoch=2)


# Jitted: one compile per process instead of an op-by-op init per state.
_init = jax.jit(lambda k, x, alpha: MODEL.init(k, x, alpha, train=False))


def make_state(seed=0, lr=0.1, dtype=jnp.float32, alpha_scale=1e-3):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  alpha = model_lib.init_alpha(SPACE, k2, alpha_scale)
  alpha = jax.tree.map(lambda a: a.astype(jnp.float32), alpha)
  v = _init(k1, jnp.zeros((2,) + IMAGE_SHAPE, jnp.float32), alpha)
  cast = lambda t: jax.tree.map(lambda a: a.astype(dtype), t)
  tx = optim.weight_optimizer(schedule(lr), momentum=0.9, weight_decay=3e-4,
                              clip=5.0)
  arch_tx = optim.arch_optimizer(3e-4, b1=0.5, b2=0.999, weight_decay=1e-3)
  return SearchState.create(params=cast(v['params']),
                            batch_stats=cast(v['batch_stats']),
                            alpha=cast(alpha), tx=tx, arch_tx=arch_tx, rng=k3)


def batch(seed, size=8):
  rs = np.random.RandomState(seed)
  return {'image': rs.randint(0, 256, (size,) + IMAGE_SHAPE).astype(np.uint8),
          'label': rs.randint(0, 10, (size,)).astype(np.int32)}


def small_digits(n: int = 64):
  """The bundled digits with only the first `n` training images: searches
  of several short epochs (64 images: 4 steps of 8 per half)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from nasjax import data  # pylint: disable=g-import-not-at-top
  from nasjax.data import pipeline  # pylint: disable=g-import-not-at-top
  ds = data.load('digits')
  return dataclasses.replace(ds, train=pipeline.Split(
      ds.train.images[:n], ds.train.labels[:n]))


def override(config, **fields):
  """Sets dotted fields of an ml_collections config: override(c, **{'a.b': 1})."""
  for k, v in fields.items():
    obj = config
    *path, last = k.split('.')
    for p in path:
      obj = obj[p]
    obj[last] = v
  return config


# A 2-node genotype: discrete networks built from it compile quickly.
TINY_GENOTYPE = genotype_lib.make(
    normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('avg_pool_3x3', 2),
            ('sep_conv_3x3', 1)], normal_concat=[2, 3],
    reduce=[('max_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 2),
            ('max_pool_3x3', 1)], reduce_concat=[2, 3])


@jax.custom_vjp
def nan_gradient(x):
  """The identity, whose derivative is NaN: a finite loss, non-finite grads."""
  return x


nan_gradient.defvjp(lambda x: (x, None), lambda _, g: (g * jnp.nan,))


class NanGradientModel:
  """A search network whose forward pass is unchanged but whose gradient
  w.r.t. the weights (`where='weights'`) or alpha (`where='alpha'`) is NaN.

  Duck-types the `init` / `apply` of `model_lib.SearchNetwork`, which is all
  the steps and the search loop call.
  """

  def __init__(self, model, where='weights'):
    self.model, self.where = model, where

  def init(self, *args, **kwargs):
    return self.model.init(*args, **kwargs)

  def apply(self, variables, x, alpha, **kwargs):
    if self.where == 'alpha':
      alpha = jax.tree.map(nan_gradient, alpha)
    else:
      variables = dict(variables,
                       params=jax.tree.map(nan_gradient, variables['params']))
    return self.model.apply(variables, x, alpha, **kwargs)


def event_tags(directory):
  """{'scalars': set, 'images': set, 'files': [paths]} of the TensorBoard
  event files under `directory` (read with tensorboardX's protos)."""
  import os  # pylint: disable=g-import-not-at-top
  import struct  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  files = [os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs
           if 'tfevents' in f]
  scalars, images = set(), set()
  for path in files:
    with open(path, 'rb') as f:
      data = f.read()
    i = 0
    while i < len(data):
      (length,) = struct.unpack('<Q', data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
      i += 12 + length + 4
      for v in event.summary.value:
        if v.HasField('image'):
          images.add(v.tag)
        elif v.HasField('simple_value'):
          scalars.add(v.tag)
  return {'scalars': scalars, 'images': images, 'files': files}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(binary: str, variant: str, *args: str, timeout: int = 900,
               config_file: str | None = None,
               **env) -> subprocess.CompletedProcess:
  """experiments/<binary>.py with --config=experiments/configs/<binary>.py:
  <variant> (or `config_file`.py) and `args`, as a user runs it
  (XLA_FLAGS='': the binary sets up its own devices)."""
  config = os.path.join(ROOT, 'experiments', 'configs',
                        f'{config_file or binary}.py')
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', f'{binary}.py'),
       f'--config={config}:{variant}', *args], capture_output=True,
      text=True, env=dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT, **env),
      timeout=timeout, check=False)


def restore_latest(workdir: str, template):
  """(state, metadata) of the newest checkpoint in `workdir`, restored into
  `template`'s structure."""
  from nasjax import checkpoint  # pylint: disable=g-import-not-at-top
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
  try:
    return ckpt.restore_latest(template)
  finally:
    ckpt.close()


def _files(workdir) -> dict:
  """{relative path: (mtime_ns, bytes)} of a workdir's files, TensorBoard's
  event files and the lock file left out."""
  out = {}
  for root, _, names in os.walk(workdir):
    rel = os.path.relpath(root, workdir)
    if rel == 'tb' or rel.startswith('tb' + os.sep):
      continue
    for name in names:
      if name == 'nasjax.lock':
        continue
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        out[os.path.relpath(path, workdir)] = (os.stat(path).st_mtime_ns,
                                               f.read())
  return out


def assert_rerun_changes_nothing(workdir, rerun):
  """Runs `rerun()` (the finished run in `workdir` again) and checks that no
  file changed, not even its time stamp, and that it returns (if anything)
  a result whose summary is the results.json on disk."""
  before = _files(workdir)
  assert 'results.json' in before, sorted(before)
  out = rerun()
  after = _files(workdir)
  changed = sorted(k for k in set(before) | set(after)
                   if before.get(k) != after.get(k))
  assert not changed, (changed, getattr(out, 'stderr', '')[-3000:])
  if out is not None and hasattr(out, 'summary'):
    assert out.summary == json.loads(before['results.json'][1])
  return out
