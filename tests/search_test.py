"""The search binary's loop: smoke run, exact resume, NaN stop, interrupts."""

import json
import os
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from nasjax import data
from nasjax.configs import darts_search as configs
from nasjax import checkpoint
from nasjax.darts import search
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(**overrides):
  c = configs.get_config('tiny')
  c.search.arch_mode = 'first_order'
  return helpers.override(c, **overrides)


def _initial_state(config):
  ds = data.get_dataset('digits')
  space, model, tx, arch_tx, _, _ = search.build(config, ds, 10)
  return search.init_state(model, space, tx, arch_tx, ds.image_shape,
                           config.seed, search.parallel.make_mesh(1))


def _restore(workdir, config):
  template = _initial_state(config)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
  state, meta = ckpt.restore_latest(template)
  ckpt.close()
  return state, meta


@pytest.mark.parametrize('arch_mode', ['first_order', 'second_order'])
def test_resume_equals_uninterrupted(tmp_path, arch_mode):
  """2 steps, then a second run to 3 from the checkpoint, equals 3 steps in
  one run, leaf for leaf. Second order runs the staged step, compiled ahead
  (`precompile`) on the restored state, as the binary does."""
  ds = data.get_dataset('digits')
  mode = {'search.arch_mode': arch_mode}
  straight, split = tmp_path / 'straight', tmp_path / 'split'
  a = search.search(_config(max_steps=3, num_devices=1, **mode),
                    str(straight), ds)
  first = search.search(_config(max_steps=2, num_devices=1, **mode),
                        str(split), ds)
  b = search.search(_config(max_steps=3, num_devices=1, **mode), str(split),
                    ds)
  assert (a.summary['start_step'], first.summary['start_step'],
          b.summary['start_step']) == (0, 0, 2)
  assert a.summary['step'] == b.summary['step'] == 3
  a_state, meta_a = _restore(str(straight), _config())
  b_state, meta_b = _restore(str(split), _config())
  assert meta_a['step'] == meta_b['step'] == 3
  chex.assert_trees_all_equal(jax.device_get(a_state.checkpoint_items()),
                              jax.device_get(b_state.checkpoint_items()))


def test_finite_difference_option_runs_in_the_search(tmp_path):
  """The paper's approximation through the search loop (staged, as the
  binary runs it): two steps complete and move alpha."""
  ds = data.get_dataset('digits')
  config = _config(max_steps=2, num_devices=1,
                   **{'search.arch_mode': 'finite_difference'})
  summary = search.search(config, str(tmp_path), ds)
  assert summary.status == 'completed' and summary.summary['step'] == 2
  state, meta = _restore(str(tmp_path), config)
  assert meta['step'] == 2
  chex.assert_tree_all_finite(state.alpha)
  initial = _initial_state(config)
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))),
                       jax.device_get(state.alpha),
                       jax.device_get(initial.alpha))
  assert all(m > 0 for m in jax.tree.leaves(moved)), moved


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
  ds = data.get_dataset('digits')
  config = _config(max_steps=6, num_devices=1, checkpoint_every_steps=1)
  config.optimizer.learning_rate = 1e30
  config.optimizer.learning_rate_min = 1e30
  config.optimizer.grad_clip = 0.0
  with pytest.raises(FloatingPointError, match='Non-finite loss or gradient at step'):
    search.search(config, str(tmp_path), ds)
  state, meta = _restore(str(tmp_path), config)
  assert state is not None
  chex.assert_tree_all_finite(state.params)


def test_non_finite_gradient_stops_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  """A finite loss with a NaN weight gradient, from step 2 of a resumed
  search: the loop stops, and the checkpoint of step 2 is kept, equal in
  every leaf to what the good run saved."""
  ds = data.get_dataset('digits')
  config = _config(max_steps=2, num_devices=1, checkpoint_every_steps=1)
  search.search(config, str(tmp_path), ds)
  good, meta = _restore(str(tmp_path), config)
  assert meta['step'] == 2
  network = search.model_lib.SearchNetwork
  monkeypatch.setattr(search.model_lib, 'SearchNetwork',
                      lambda *a: helpers.NanGradientModel(network(*a)))
  config = _config(max_steps=4, num_devices=1, checkpoint_every_steps=1)
  with pytest.raises(search.loop.NonFiniteError,
                     match=r'at step 2 .*last good checkpoint \(step 2\)'):
    search.search(config, str(tmp_path), ds)
  kept, meta = _restore(str(tmp_path), config)
  assert meta['step'] == 2
  chex.assert_trees_all_equal(jax.device_get(kept.checkpoint_items()),
                              jax.device_get(good.checkpoint_items()))
  # At step 0 there is nothing to keep, and the message says so.
  with pytest.raises(search.loop.NonFiniteError,
                     match='no checkpoint exists yet'):
    search.search(config, str(tmp_path / 'fresh'), ds)


def test_binary_smoke_run(tmp_path):
  """The README's binary on the tiny config: files a user expects appear."""
  env = dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT)
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'darts_search.py'),
       '--config=' + os.path.join(ROOT, 'experiments', 'configs',
                                  'darts_search.py') + ':tiny',
       f'--workdir={tmp_path}'], capture_output=True, text=True, env=env,
      timeout=900, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  for name in ('genotype.json', 'genotype.txt', 'genotype_normal.svg',
               'genotype_reduce.svg', 'results.json'):
    assert (tmp_path / name).exists(), name
  assert (tmp_path / 'genotypes' / 'epoch_000.json').exists()
  assert (tmp_path / 'alpha.png').read_bytes()[:4] == b'\x89PNG'
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['status'] == 'completed' and results['step'] == 2
  assert np.isfinite(results['last_epoch_metrics']['val_loss'])
  # Run again, it reports the finished run and rewrites nothing.
  again = helpers.assert_rerun_changes_nothing(tmp_path, lambda: subprocess.run(
      out.args, capture_output=True, text=True, env=env, timeout=900,
      check=False))
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'is complete already' in again.stderr
  assert again.stdout == out.stdout  # The same genotype, printed again.
  assert 'ETA' in out.stderr
  # The compilation is announced before it starts and timed after it.
  log = out.stderr
  assert log.index('Compiling the second_order search step') < log.index(
      'Compiled the second_order search step') < log.index('step 1/2')
  # TensorBoard: one event file; softmax(alpha) as one tag per cell, edge
  # and op, and the alpha matrix as an image.
  tb = helpers.event_tags(tmp_path / 'tb')
  assert len(tb['files']) == 1, tb['files']
  config = configs.get_config('tiny')
  space = search.darts_cell.DartsCellSpace(
      tuple(config.search_space.primitives), steps=config.search_space.steps)
  alpha_tags = {f'alpha_{t}/node{i}_input{j}/{op}' for t in ('normal', 'reduce')
                for i, j in space.edges() for op in space.primitives}
  assert alpha_tags <= tb['scalars'], sorted(alpha_tags - tb['scalars'])[:3]
  assert {'train/train_loss', 'epoch/val_accuracy'} <= tb['scalars']
  assert tb['images'] == {'alpha'}


def test_sigterm_saves_before_exit(tmp_path):
  ds = data.get_dataset('digits')
  config = _config(max_steps=50, num_devices=1, checkpoint_every_steps=1000,
                   log_every_steps=1)
  orig = search.pipeline.batches

  def batches_then_sigterm(*args, **kwargs):
    for i, item in enumerate(orig(*args, **kwargs)):
      if i == 3:
        os.kill(os.getpid(), 15)
      yield item

  search.pipeline.batches = batches_then_sigterm
  try:
    summary = search.search(config, str(tmp_path), ds)
  finally:
    search.pipeline.batches = orig
  assert summary.status == 'interrupted'
  assert 0 < summary.summary['step'] < 50
  _, meta = _restore(str(tmp_path), config)
  assert meta['step'] == summary.summary['step']
  # Not finished: no final genotype or results files.
  for name in ('genotype.json', 'genotype.txt', 'genotype_normal.svg',
               'results.json'):
    assert not (tmp_path / name).exists(), name


def test_cpu_split_divides_every_batch():
  from nasjax import platform  # pylint: disable=g-import-not-at-top
  assert platform.cpu_devices_dividing([32], cores=2) == 2
  assert platform.cpu_devices_dividing([32, 339], cores=2) == 1
  assert platform.cpu_devices_dividing([96, 500], cores=16) == 4


def test_staged_unrolled_is_a_clear_error(tmp_path):
  config = _config(**{'search.arch_mode': 'second_order',
                      'search.second_order_impl': 'unrolled'})
  with pytest.raises(ValueError, match='needs search.staged=False'):
    search.search(config, str(tmp_path), data.get_dataset('digits'))
  assert not os.listdir(tmp_path)
