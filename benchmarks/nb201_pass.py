r"""Times one NAS-Bench-201 supernet pass, forward and backward, under the
three mixings the strategies use: where the one-shot steps spend their time.

  python benchmarks/nb201_pass.py --channels=16 --cells_per_stage=5 \
      --batch=64 --repeats=3

A pass is `jax.grad` of the cross-entropy of one batch of random images with
respect to the weights and the op weights, jitted, BatchNorm on batch
statistics, as in a search step:

  selected op, traced index   what GDAS, RSPS and ENAS run: a hard one-hot
                              mixing whose index is a traced array, each edge
                              an `nn.switch` over its ops (XLA conditionals)
  every op, one-hot weights   the same mixing with the index dropped: every op
                              computed and multiplied by its weight (0 or 1)
  every op, softmax weights   DARTS's mixing

It prints the compile time (the first call) and the median of `--repeats`
further calls of each, one JSON line per mixing.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nasjax import platform
from nasjax.mixing import Mixing
from nasjax.search_spaces.nb201 import networks

_C = flags.DEFINE_integer('channels', 16, 'C of the first stage.')
_N = flags.DEFINE_integer('cells_per_stage', 5, 'Cells per stage.')
_B = flags.DEFINE_integer('batch', 64, 'Batch size.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls after the first.')


def main(argv):
  del argv
  platform.ensure_setup()
  net = networks.Supernet(10, _C.value, _N.value)
  x = jax.random.normal(jax.random.key(0), (_B.value, 32, 32, 3))
  y = jnp.arange(_B.value) % 10
  v = net.init(jax.random.key(1), x, {'cell': Mixing(jnp.full((6, 5), 0.2))},
               train=False)

  def loss(params, weights, index):
    logits, _ = net.apply({'params': params,
                           'batch_stats': v['batch_stats']}, x,
                          {'cell': Mixing(weights, index)}, train=True,
                          mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  index = jnp.asarray([3, 1, 2, 4, 3, 1])
  hard = jax.nn.one_hot(index, 5)
  soft = jax.nn.softmax(jax.random.normal(jax.random.key(2), (6, 5)), -1)
  runs = (('selected op, traced index', loss, (hard, index)),
          ('every op, one-hot weights',
           lambda p, w: loss(p, w, None), (hard,)),
          ('every op, softmax weights',
           lambda p, w: loss(p, w, None), (soft,)))
  for name, fn, args in runs:
    grad = jax.jit(jax.grad(fn, argnums=(0, 1)))
    t = time.time()
    jax.block_until_ready(grad(v['params'], *args))
    compile_s = time.time() - t
    times = []
    for _ in range(_REPEATS.value):
      t = time.time()
      jax.block_until_ready(grad(v['params'], *args))
      times.append(time.time() - t)
    print(json.dumps({'mixing': name, 'channels': _C.value,
                      'cells_per_stage': _N.value, 'batch': _B.value,
                      'first_call_seconds': round(compile_s, 1),
                      'median_seconds': round(float(np.median(times)), 3),
                      'device': jax.default_backend()}), flush=True)


if __name__ == '__main__':
  app.run(main)
