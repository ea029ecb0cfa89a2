r"""Times the parts of a NAS-Bench-201 one-shot step: where its time goes.

  python benchmarks/nb201_step_parts.py --channels=16 --cells_per_stage=5

Builds the nb201_darts preset's supernet and family (every op computed,
batch 64 of random images) and times, jitted, the median of 3 calls after
the first (printed as `first`, mostly compiling):

  grad (weights, alpha)          the loss's gradient in both
  grad alpha                     in alpha only (the first-order alpha step)
  grad weights, alpha constant   in the weights, alpha closed over
  grad weights, alpha traced     in the weights, alpha an argument: the
                                 weight step's case, which XLA:CPU compiled
                                 into a 3x larger, 6x slower program
  weight step                    `bilevel.weight_step` as the one-shot
                                 loop runs it (it also takes alpha's
                                 gradient: `train_alpha_grad_norm`)
  search step, first order       `bilevel.search_step`
"""

import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np

from nasjax import configs
from nasjax import data
from nasjax import one_shot
from nasjax import parallel
from nasjax import platform
from nasjax import bilevel as step_lib

_C = flags.DEFINE_integer('channels', 16, 'C of the first stage.')
_N = flags.DEFINE_integer('cells_per_stage', 5, 'Cells per stage.')


def _time(name, f, *args, repeats=3):
  t = time.time()
  jax.block_until_ready(f(*args))
  first = time.time() - t
  times = []
  for _ in range(repeats):
    t = time.time()
    jax.block_until_ready(f(*args))
    times.append(time.time() - t)
  print(f'{name}: first {first:.1f} s, median {np.median(times):.3f} s',
        flush=True)


def main(argv):
  del argv
  platform.setup()
  c = configs.one_shot('nb201_darts')
  c.model.channels, c.model.cells_per_stage = _C.value, _N.value
  c.model.unselected_weights = 'every_op'
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (256, 32, 32, 3), np.uint8)
  labels = rng.integers(0, 10, 256).astype(np.int32)
  ds = data.from_arrays(images, labels, images[:64], labels[:64],
                        name='random')
  mesh = parallel.make_mesh(1)
  space, strategy, model, family, tx, arch_tx, schedule, _ = one_shot.build(
      c, ds, 100)
  state = one_shot.init_state(space, strategy, model, tx, arch_tx,
                              ds.image_shape, 0, mesh)
  batch = {'image': images[:64], 'label': labels[:64]}
  inputs = family.prepare(state.rng, state.step, 0, batch)
  loss = lambda p, a: family.loss(p, state.batch_stats, a, inputs)[0]
  _time('grad (weights, alpha)', jax.jit(jax.grad(loss, argnums=(0, 1))),
        state.params, state.alpha)
  _time('grad alpha', jax.jit(jax.grad(loss, argnums=1)), state.params,
        state.alpha)
  _time('grad weights, alpha constant',
        jax.jit(jax.grad(lambda p: loss(p, state.alpha))), state.params)
  _time('grad weights, alpha traced', jax.jit(jax.grad(loss)), state.params,
        state.alpha)
  weight = jax.jit(functools.partial(step_lib.weight_step, model=family))
  _time('weight step', lambda s: weight(s, batch)[0].params, state)
  search = jax.jit(functools.partial(
      step_lib.search_step, model=family, arch_mode='first_order',
      learning_rate=schedule))
  _time('search step, first order',
        lambda s: search(s, batch, batch)[0].params, state)


if __name__ == '__main__':
  app.run(main)
