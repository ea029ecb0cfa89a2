"""Data parallelism: 8 (fake CPU) devices take the same step as 1 device."""

import functools

import chex
import jax
import pytest

from nasjax import parallel
from nasjax.darts import step as step_lib
from tests import helpers


@pytest.mark.parametrize('arch_mode', ['first_order', 'second_order'])
def test_eight_devices_equal_one(arch_mode):
  assert jax.device_count() == 8, 'conftest sets 8 fake CPU devices'
  fn = functools.partial(step_lib.search_step, model=helpers.MODEL,
                         preprocess=helpers.PREP, arch_mode=arch_mode)
  tb, vb = helpers.batch(1, 16), helpers.batch(2, 16)
  results = []
  for n in (1, 8):
    mesh = parallel.make_mesh(n)
    state = parallel.replicate(helpers.make_state(), mesh)
    step = parallel.jit_step(fn, mesh, num_batches=2)
    new, metrics = step(state, parallel.shard_batch(tb, mesh),
                        parallel.shard_batch(vb, mesh))
    assert len(metrics['val_loss'].sharding.device_set) == n
    items = dict(new.checkpoint_items(), rng=jax.random.key_data(new.rng))
    results.append(jax.device_get((items, metrics)))
  chex.assert_trees_all_close(results[0], results[1], rtol=2e-4, atol=2e-5)


def test_indivisible_batch_is_a_clear_error():
  mesh = parallel.make_mesh(8)
  with pytest.raises(ValueError, match='12 must be divisible by the number '
                     'of devices \\(8\\)'):
    parallel.shard_batch(helpers.batch(1, 12), mesh)
