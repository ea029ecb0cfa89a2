"""Data parallelism: 8 (fake CPU) devices take the same step as 1 device."""

import functools
import os

import chex
import jax
import pytest

from nasjax import parallel
from nasjax import bilevel as step_lib
from tests import helpers


@pytest.mark.parametrize('arch_mode,staged', [('first_order', False),
                                               ('second_order', False),
                                               ('second_order', True)])
def test_eight_devices_equal_one(arch_mode, staged):
  """8 devices (one program, or staged as the binaries run it) = 1 device."""
  assert jax.device_count() == 8, 'conftest sets 8 fake CPU devices'
  kw = dict(model=helpers.MODEL, preprocess=helpers.PREP, arch_mode=arch_mode)
  fn = functools.partial(step_lib.search_step, **kw)
  tb, vb = helpers.batch(1, 16), helpers.batch(2, 16)
  results = []
  for n in (1, 8):
    mesh = parallel.make_mesh(n)
    state = parallel.replicate(helpers.make_state(), mesh)
    if staged and n == 8:
      step = step_lib.staged_search_step(parallel.stage_jitter(mesh), **kw)
    else:
      step = parallel.jit_step(fn, mesh, num_batches=2)
    new, metrics = step(state, parallel.shard_batch(tb, mesh),
                        parallel.shard_batch(vb, mesh))
    assert len(metrics['val_loss'].sharding.device_set) == n
    assert len(new.params['classifier']['kernel'].sharding.device_set) == n
    items = dict(new.checkpoint_items(), rng=jax.random.key_data(new.rng))
    results.append(jax.device_get((items, metrics)))
  chex.assert_trees_all_close(results[0], results[1], rtol=2e-4, atol=2e-5)


def test_indivisible_batch_is_a_clear_error():
  mesh = parallel.make_mesh(8)
  with pytest.raises(ValueError, match='12 must be divisible by the number '
                     'of devices \\(8\\)'):
    parallel.shard_batch(helpers.batch(1, 12), mesh)


def test_retraining_step_eight_devices_equal_one():
  """A discrete network's step (drop-path, BN, aux head) is data-parallel."""
  from nasjax import optim  # pylint: disable=g-import-not-at-top
  from nasjax.final import network, step as final_step  # pylint: disable=g-import-not-at-top
  from nasjax.train_state import TrainState  # pylint: disable=g-import-not-at-top
  net = network.NetworkCIFAR(helpers.TINY_GENOTYPE, channels=4, num_classes=10,
                             layers=3)
  x = jax.numpy.zeros((2, 32, 32, 3))
  v = net.init({'params': jax.random.key(0), 'drop_path': jax.random.key(1)},
               x, train=True)
  tx = optim.weight_optimizer(0.1, momentum=0.9, weight_decay=3e-4, clip=5.0)
  state = TrainState.create(params=v['params'], batch_stats=v['batch_stats'],
                            tx=tx, rng=jax.random.key(2))
  prep = helpers.augment.make_preprocess(
      mean=(0.5,) * 3, std=(0.25,) * 3, crop_padding=4, flip=True,
      cutout_length=8)
  fn = functools.partial(final_step.train_step, model=net, preprocess=prep,
                         drop_path=lambda step: 0.2, aux_weight=0.4)
  rs = helpers.np.random.RandomState(0)
  batch = {'image': rs.randint(0, 256, (16, 32, 32, 3)).astype('uint8'),
           'label': rs.randint(0, 10, (16,)).astype('int32')}
  results = []
  for n in (1, 8):
    mesh = parallel.make_mesh(n)
    new, metrics = parallel.jit_step(fn, mesh)(
        parallel.replicate(state, mesh), parallel.shard_batch(batch, mesh))
    items = dict(new.checkpoint_items(), rng=jax.random.key_data(new.rng))
    results.append(jax.device_get((items, metrics)))
  chex.assert_trees_all_close(results[0], results[1], rtol=2e-4, atol=2e-5)


def test_add_xla_flags_appends_and_keeps_what_is_set(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_use_fusion_emitters=true')
  parallel.add_xla_flags(['--xla_cpu_use_fusion_emitters=false',
                          '--xla_force_host_platform_device_count=2'])
  assert os.environ['XLA_FLAGS'].split() == [
      '--xla_cpu_use_fusion_emitters=true',
      '--xla_force_host_platform_device_count=2']
  monkeypatch.delenv('XLA_FLAGS')
  parallel.add_xla_flags()
  assert os.environ['XLA_FLAGS'].split() == list(parallel.XLA_CPU_FLAGS)


def test_splitting_the_cpu_sizes_xla_thread_pool(monkeypatch):
  """Several CPU devices get a thread pool with spare threads ($NPROC), so
  that a collective waiting on one device cannot starve the others; a value
  the user set wins, and one device changes nothing."""
  from nasjax import platform  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv('NPROC', raising=False)
  monkeypatch.setenv('XLA_FLAGS', '')
  platform.split_cpu(1, [32])
  assert 'NPROC' not in os.environ
  platform.split_cpu(2, [32])
  assert os.environ['NPROC'] == str(max(os.cpu_count(),
                                        2 * parallel.CPU_THREADS_PER_DEVICE))
  assert '--xla_force_host_platform_device_count=2' in os.environ['XLA_FLAGS']
  monkeypatch.setenv('NPROC', '3')
  parallel.size_cpu_thread_pool(4)
  assert os.environ['NPROC'] == '3'
