r"""Times the ENAS child step against the fixed network of the same arc.

  python benchmarks/enas_step.py --space=micro --size=20/6/160 --arcs=3

For each of `--arcs` arcs sampled from a fresh controller: the median time
of a shared-weight child training step on that arc (`step.train_step` with
the arc a traced argument: the function the search runs, compiled once for
every arc) and of the same step on the fixed network of that arc
(`child.child(space, arc)`: only its weights, its ops chosen in Python,
compiled per arc), same batch, optimiser and machine, in one process,
timed in alternation (one step of each per round); and the compile times. One JSON line per arc, then a summary line with the
median and largest ratio. Random 32x32x3 images, 10 classes.

--size is F/layers/batch (micro: the reference search is 20/6/160; macro:
36/12/128). The sampling of the arc (a 64-unit LSTM, part of the search's
child step) is timed separately as `sample_ms`.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

_SPACE = flags.DEFINE_enum('space', 'micro', ['micro', 'macro'], 'Space.')
_SIZE = flags.DEFINE_string('size', '8/3/32', 'F/layers/batch.')
_ARCS = flags.DEFINE_integer('arcs', 3, 'Sampled arcs to time.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps per arc (median); '
                              'the two steps alternate.')
_IMPL = flags.DEFINE_string('depthwise_impl', 'auto', 'Depthwise impl.')


def _interleaved(fns, states, steps):
  """Median seconds of each fn(state) -> (state, metrics), timed in turn
  (one step of each per round), after a warm-up step of each."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  states, times = list(states), [[] for _ in fns]
  for r in range(steps + 1):
    for k, fn in enumerate(fns):
      t = time.perf_counter()
      states[k], m = fn(states[k])
      jax.block_until_ready(m)
      if r:
        times[k].append(time.perf_counter() - t)
  return [float(np.median(t)) for t in times]


def main(argv):
  del argv
  from nasjax import platform  # pylint: disable=g-import-not-at-top
  platform.setup()
  import functools  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  from nasjax import data
  from nasjax import parallel
  from nasjax.configs import enas_search
  from nasjax.enas import child as child_lib
  from nasjax.strategies import controller as controller_lib
  from nasjax.enas import search
  from nasjax.enas import step as step_lib

  f, num_layers, batch = (int(v) for v in _SIZE.value.split('/'))
  config = enas_search.get_config(_SPACE.value)
  config.model.channels, config.model.layers = f, num_layers
  config.batch_size, config.depthwise_impl = batch, _IMPL.value
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, (batch,), dtype=np.int32)
  ds = data.from_arrays(images, labels, images[:10], labels[:10],
                        name='random')
  mesh = parallel.make_mesh(1)
  s = search.build(config, ds, steps_per_epoch=100)
  state = search.init_state(s, ds.image_shape, 0, mesh)
  b = parallel.shard_batch({'image': images, 'label': labels}, mesh)
  device = jax.devices()[0].device_kind
  bound = dict(preprocess=s.prep, aux_weight=config.model.aux_weight,
               drop_rate=s.drop_rate)

  sample = jax.jit(functools.partial(controller_lib.sample, space=s.space,
                                     config=s.controller))
  keys = [jax.random.key(k) for k in range(6)]
  arc0 = jax.block_until_ready(sample(state.controller.params, keys[0]).arc)
  sample_times = []
  for k in keys[1:]:
    t = time.perf_counter()
    jax.block_until_ready(sample(state.controller.params, k))
    sample_times.append(time.perf_counter() - t)
  sample_ms = 1e3 * float(np.median(sample_times))

  shared = jax.jit(functools.partial(step_lib.train_step, model=s.model,
                                     **bound))
  t = time.perf_counter()
  shared = shared.lower(state, b, arc0).compile()
  shared_compile = time.perf_counter() - t
  ratios = []
  for k in range(_ARCS.value):
    arc = jax.device_get(sample(state.controller.params,
                                jax.random.key(100 + k)).arc)
    fixed_model = search.make_model(config, s.space, 10, arc)
    if config.space == 'micro':
      params, stats = child_lib.fixed_params(s.space, state.params, arc), {}
    else:
      params, stats = child_lib.fixed_params(s.space, state.params, arc,
                                             state.batch_stats)
    fixed_state = state.replace(params=params, batch_stats=stats,
                                opt_state=s.tx.init(params))
    fixed = jax.jit(functools.partial(step_lib.train_step, model=fixed_model,
                                      **bound))
    t = time.perf_counter()
    fixed = fixed.lower(fixed_state, b, None).compile()
    fixed_compile = time.perf_counter() - t
    shared_s, fixed_s = _interleaved(
        [lambda st: shared(st, b, arc), lambda st: fixed(st, b, None)],  # pylint: disable=cell-var-from-loop
        [state, fixed_state], _STEPS.value)
    ratios.append(shared_s / fixed_s)
    print(json.dumps({
        'space': config.space, 'size': _SIZE.value, 'device': device,
        'arc': search._arc_string(s.space, arc),  # pylint: disable=protected-access
        'shared_step_ms': round(1e3 * shared_s, 2),
        'fixed_step_ms': round(1e3 * fixed_s, 2),
        'ratio': round(shared_s / fixed_s, 3),
        'fixed_compile_s': round(fixed_compile, 1)}), flush=True)
  print(json.dumps({
      'space': config.space, 'size': _SIZE.value, 'device': device,
      'depthwise_impl': _IMPL.value, 'arcs': len(ratios),
      'median_ratio': round(float(np.median(ratios)), 3),
      'max_ratio': round(float(np.max(ratios)), 3),
      'shared_compile_s': round(shared_compile, 1),
      'sample_ms': round(sample_ms, 2)}), flush=True)


if __name__ == '__main__':
  app.run(main)
