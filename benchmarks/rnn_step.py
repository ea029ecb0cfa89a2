r"""Times the recurrent search steps (DARTS, ENAS) and the language model's
weight step.

  python benchmarks/rnn_step.py --mode=second_order --size=10000/300/256/35
  python benchmarks/rnn_step.py --mode=retrain --size=10000/850/64/35
  python benchmarks/rnn_step.py --mode=enas_child --size=10000/200/128/35

--size is vocab/units/batch/bptt. Modes:

* first_order, second_order: one DARTS search step of the recurrent search
  cell (`bilevel.search_step` with the `darts.rnn.LanguageModel` family,
  one program, exact hypergradient for second_order): a training window and
  a validation window of bptt tokens; the papers' search size is
  10000/300/256/35.
* retrain: one SGD weight step (clip 0.25, the retraining's dropouts) of the
  language model with the DARTS_V2 cell; the papers' retraining size is
  10000/850/64/35. The averaged-SGD bookkeeping of a full retraining is not
  included.
* enas_child: one ENAS shared-weight step (`enas.step.lm_child_step`: the
  controller samples an 8-node cell, the shared cell trains on it; clip
  0.1); the corrected reference's search size is 10000/200/128/35. The
  retrain mode at the same size is the fixed cell's step to compare with.

Prints one JSON line: compile seconds, median step milliseconds over
--steps steps after a warm-up, tokens per second (batch x bptt per step, the
training window), the device, and peak memory (the device's peak bytes when
it reports them, else the process's peak RSS). Random tokens.
"""

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

_MODE = flags.DEFINE_enum('mode', 'first_order',
                          ['first_order', 'second_order', 'retrain',
                           'enas_child'], 'Step.')
_SIZE = flags.DEFINE_string('size', '1000/64/32/35',
                            'vocab/units/batch/bptt.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (median).')


def main(argv):
  del argv
  from nasjax import platform  # pylint: disable=g-import-not-at-top
  platform.setup()
  import functools  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from nasjax.darts import rnn
  from nasjax import bilevel as step_lib
  from nasjax.genotype import recurrent
  from nasjax.search_spaces import darts_rnn
  from nasjax.train_state import SearchState

  vocab, units, batch, bptt = (int(v) for v in _SIZE.value.split('/'))
  mode = _MODE.value
  space = darts_rnn.DartsRnnSpace()
  if mode == 'retrain':
    model = rnn.RNNModel(vocab, units, genotype=recurrent.DARTS_V2_RNN,
                         dropout_e=0.1)
    alpha, weight_decay = {}, 8e-7
  elif mode == 'enas_child':
    from nasjax.strategies import controller as controller_lib  # pylint: disable=g-import-not-at-top
    from nasjax.enas import step as enas_step  # pylint: disable=g-import-not-at-top
    from nasjax.search_spaces import enas as enas_space  # pylint: disable=g-import-not-at-top
    shared = enas_space.RecurrentSpace()
    model = rnn.RNNModel(vocab, units, shared=shared, dropout_e=0.1)
    alpha, weight_decay = jnp.zeros(shared.arc_shape, jnp.int32), 8e-7
  else:
    model = rnn.RNNModel(vocab, units)
    alpha, weight_decay = rnn.init_alpha(space, jax.random.key(0)), 5e-7
  family = rnn.LanguageModel(model, bptt=bptt)
  tx = optax.chain(optax.clip_by_global_norm(
      0.1 if mode == 'enas_child' else 0.25),
                   optax.add_decayed_weights(weight_decay), optax.sgd(20.0))
  tokens = np.random.default_rng(0).integers(0, vocab, (batch, bptt + 1),
                                             dtype=np.int32)
  b = {'inputs': jnp.asarray(tokens[:, :-1]),
       'targets': jnp.asarray(tokens[:, 1:])}

  def init():
    v = model.init(jax.random.key(1), b['inputs'][:2],
                   jnp.zeros((2, units)),
                   None if isinstance(alpha, dict) and not alpha else alpha)
    if mode == 'enas_child':
      return enas_step.EnasState.create(
          params=v['params'], batch_stats={},
          controller_params=controller_lib.init(
              jax.random.key(3), shared, controller_lib.RECURRENT),
          tx=tx, controller_tx=optax.adam(5e-5), rng=jax.random.key(2),
          carry=rnn.initial_carry({'train': batch}, units))
    return SearchState.create(
        params=v['params'], batch_stats=v.get('batch_stats', {}),
        alpha=alpha, tx=tx, arch_tx=optax.adam(3e-3), rng=jax.random.key(2),
        carry=rnn.initial_carry({'train': batch, 'val': batch}, units))

  state = jax.jit(init)()
  if mode == 'retrain':
    fn = functools.partial(step_lib.weight_step, model=family)
    args = (b,)
  elif mode == 'enas_child':
    fn = functools.partial(enas_step.lm_child_step, family=family,
                           space=shared,
                           controller_config=controller_lib.RECURRENT)
    args = (b,)
  else:
    fn = functools.partial(step_lib.search_step, model=family,
                           arch_mode=mode)
    args = (b, b)
  t = time.perf_counter()
  step = jax.jit(fn, donate_argnums=0).lower(state, *args).compile()
  compile_s = time.perf_counter() - t
  times = []
  for i in range(_STEPS.value + 1):
    t = time.perf_counter()
    state, metrics = step(state, *args)
    jax.block_until_ready(metrics)
    if i:
      times.append(time.perf_counter() - t)
  step_s = float(np.median(times))
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  peak = (stats['peak_bytes_in_use'] / 2**20 if 'peak_bytes_in_use' in stats
          else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
  print(json.dumps({
      'mode': mode, 'size': _SIZE.value, 'device': device.device_kind,
      'compile_s': round(compile_s, 1), 'step_ms': round(1e3 * step_s, 2),
      'tokens_per_s': round(batch * bptt / step_s),
      'peak_mib': round(peak),
      'peak_kind': 'device' if 'peak_bytes_in_use' in stats else 'host_rss',
      'finite': bool(metrics['finite'])}), flush=True)


if __name__ == '__main__':
  app.run(main)
