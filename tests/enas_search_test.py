"""The ENAS search: binary, exact resume, derive, 8 devices, NaN guard."""

import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nasjax
from nasjax import data
from nasjax import parallel
from nasjax.configs import enas_search as configs
from nasjax.enas import search
from nasjax.search_spaces import enas as enas_space
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup(config, devices=1):
  ds = data.load('digits')
  mesh = parallel.make_mesh(devices)
  s = search.build(config, ds, config.steps_per_epoch)
  return ds, mesh, s


def _restore(workdir, config):
  ds, mesh, s = _setup(config)
  template = search.init_state(s, ds.image_shape, config.seed, mesh)
  return helpers.restore_latest(workdir, template)


def test_binary_then_resume_equals_uninterrupted(tmp_path):
  """The binary runs 2 steps (one child epoch and one controller phase) and
  stops; the API resumes to 4: every array of the final checkpoint (shared
  weights, their momentum, BN statistics, controller weights, Adam state,
  baseline, key) and the history equal those of 4 steps in one run. Also
  checks the files, the TensorBoard tags and the derived arc's accuracy
  against an independent forward pass."""
  ds = data.load('digits')
  straight, split = str(tmp_path / 'straight'), str(tmp_path / 'split')
  a = nasjax.enas_search(ds, 'micro_tiny', workdir=straight, progress='none')
  cmd = [sys.executable, os.path.join(ROOT, 'experiments', 'enas_search.py'),
         '--config=' + os.path.join(ROOT, 'experiments', 'configs',
                                    'enas_search.py') + ':micro_tiny',
         f'--workdir={split}', '--config.max_steps=2']
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'arc:' in proc.stdout
  b = nasjax.enas_search(ds, 'micro_tiny', workdir=split, progress='none')
  assert (a.summary['start_step'], b.summary['start_step']) == (0, 2)
  config = configs.get_config('micro_tiny')
  a_state, meta_a = _restore(straight, config)
  b_state, meta_b = _restore(split, config)
  assert meta_a['step'] == meta_b['step'] == 4
  chex.assert_trees_all_equal(jax.device_get(a_state.checkpoint_items()),
                              jax.device_get(b_state.checkpoint_items()))
  assert int(a_state.controller.step) == 2 * config.controller.train_steps
  assert [r.to_dict() for r in a.history] == [r.to_dict() for r in b.history]
  assert a.arc_string == b.arc_string

  for name in ('arc.json', 'arc.txt', 'arc_normal.svg', 'history.json',
               'results.json', 'arcs/epoch_001.json'):
    assert os.path.exists(os.path.join(straight, name)), name
  with open(os.path.join(straight, 'arc.json')) as f:
    space, arc = enas_space.from_dict(json.load(f))
  np.testing.assert_array_equal(arc, a.arc)
  tags = helpers.event_tags(os.path.join(straight, 'tb'))['scalars']
  for tag in ('train/loss', 'train/lr', 'controller/reward',
              'controller/baseline', 'controller/entropy',
              'controller/log_prob', 'controller/skips',
              'epoch/best_sampled_accuracy', 'derive/best_accuracy'):
    assert tag in tags, tag

  # Derive: candidates sorted, the best one's accuracy recomputed here.
  accs = [acc for _, acc in a.candidates]
  assert len(accs) == config.derive.num_samples
  assert accs == sorted(accs, reverse=True) and a.accuracy == accs[0]
  _, val = search.holdout_split(ds.train, config.data.num_valid)
  n = config.derive.num_batches * config.batch_size
  s = _setup(config)[2]
  x = s.prep(jnp.asarray(val.images[:n]), jax.random.key(0), False)
  hits = []
  for k in range(config.derive.num_batches):  # Batch by batch, as scored.
    sl = slice(k * config.batch_size, (k + 1) * config.batch_size)
    logits = s.model.apply({'params': a.state.params,
                            'batch_stats': a.state.batch_stats}, x[sl],
                           jnp.asarray(a.arc), train=False)
    hits.append(np.argmax(logits, -1) == val.labels[sl])
  assert np.mean(hits) == a.accuracy


def test_macro_search_runs_and_penalises_skips():
  """A macro search through the API: completes, derives a valid arc, and
  reports the skip penalty (weight 0.8) and the sampled skip count."""
  r = nasjax.enas_search('digits', 'macro_tiny', progress='none')
  assert r.status == 'completed'
  space = enas_space.MacroSpace(num_layers=3)
  space.check(r.arc)
  last = r.history[-1].train
  assert last['controller/skip_penalty'] > 0
  assert 0 <= last['controller/skips'] <= 3  # 3 possible skips in 3 layers.


def _stack(ds, start, n=2, size=8):
  """n batches of `size` training images from `start`: [n, size, ...]."""
  images = ds.train.images[start:start + n * size]
  labels = ds.train.labels[start:start + n * size]
  return {'image': images.reshape((n, size) + images.shape[1:]),
          'label': labels.reshape(n, size)}


def _one_epoch(config, devices):
  ds, mesh, s = _setup(config, devices)
  fns = search.steps(config, s, mesh)
  state = search.init_state(s, ds.image_shape, config.seed, mesh)
  batch = {'image': ds.train.images[:8], 'label': ds.train.labels[:8]}
  state, m1 = fns.child(state, parallel.shard_batch(batch, mesh))
  state, m2 = fns.controller(state,
                             parallel.shard_batch(_stack(ds, 8), mesh, 1))
  _, val = search.holdout_split(ds.train, config.data.num_valid)
  fixed = search.derive_batches(val, config.batch_size,
                                config.derive.num_batches, mesh)
  arcs, accs = search.derive(state, fns, fixed, jax.random.key(3), 4)
  return (jax.device_get(state), jax.device_get(m1), jax.device_get(m2),
          (arcs, accs))


@pytest.mark.parametrize('preset', ['micro_tiny', 'macro_tiny'])
def test_8_devices_equal_1(preset):
  """A child step, a controller update and a derivation with the batch
  sharded over 8 devices equal the 1-device ones (same arcs, same rewards,
  the same derived arcs and accuracies)."""
  config = configs.get_config(preset)
  one, c1, r1, (arcs1, accs1) = _one_epoch(config, 1)
  eight, c8, r8, (arcs8, accs8) = _one_epoch(config, 8)
  assert r1['accuracy'] == r8['accuracy'] and r1['reward'] == r8['reward']
  np.testing.assert_array_equal(accs1, accs8)
  for a1, a8 in zip(arcs1, arcs8):
    chex.assert_trees_all_equal(a1, a8)
  chex.assert_trees_all_close(c1, c8, rtol=1e-5, atol=1e-6)
  arrays = lambda st: {k: v for k, v in st.checkpoint_items().items()
                       if k != 'rng'}
  chex.assert_trees_all_close(arrays(one), arrays(eight), rtol=1e-4,
                              atol=1e-6)


def test_non_finite_controller_update_leaves_the_state_unchanged():
  """A controller whose weights hold a NaN: the update reports
  finite=False and every leaf of the state stays as it was."""
  config = configs.get_config('micro_tiny')
  ds, mesh, s = _setup(config)
  state = search.init_state(s, ds.image_shape, config.seed, mesh)
  params = dict(state.controller.params)
  params['w_soft'] = params['w_soft'].at[0, 0].set(jnp.nan)
  state = state.replace(controller=state.controller.replace(params=params))
  before = jax.device_get(state.checkpoint_items())
  fns = search.steps(config, s, mesh)
  after, metrics = fns.controller(
      state, parallel.shard_batch(_stack(ds, 0), mesh, 1))
  assert not bool(metrics['finite'])
  chex.assert_trees_all_equal(jax.device_get(after.checkpoint_items()),
                              before)


class _Spy:
  """Duck-types the shared child (`init` / `apply`); records, for every
  forward pass, whether it trains, the sampled arc and the input images."""

  def __init__(self, model, calls):
    self.model, self.calls = model, calls

  def init(self, *args, **kwargs):
    return self.model.init(*args, **kwargs)

  def apply(self, variables, x, arc, train=False, **kwargs):
    jax.debug.callback(
        lambda *a: self.calls.append(tuple(np.asarray(v) for v in a)),
        jnp.asarray(train), arc, x)
    return self.model.apply(variables, x, arc, train=train, **kwargs)


def _marked_digits(num_valid):
  """Digits whose last `num_valid` training images (the controller's
  hold-out) are 128..255 and all others 0..127."""
  ds = data.load('digits')
  train = (ds.train.images // 2).astype(np.uint8)
  train[-num_valid:] += 128
  return data.from_arrays(train, ds.train.labels, ds.test.images // 2,
                          ds.test.labels, num_classes=ds.num_classes)


def test_child_steps_train_on_the_child_split_and_the_controller_reads_the_hold_out(
    monkeypatch):
  """Every forward pass of a real search (micro_tiny, 2 epochs): the child
  steps see only the child's images, every evaluation (controller rewards,
  derivation) only the held-out ones; consecutive child steps run
  different sampled arcs and different augmentations of their batch."""
  config = configs.get_config('micro_tiny')
  config.num_devices = 1
  ds = _marked_digits(config.data.num_valid)
  calls = []
  make = search.make_model
  monkeypatch.setattr(search, 'make_model',
                      lambda *a, **k: _Spy(make(*a, **k), calls))
  search.search(config, None, ds, progress='none')
  # The marks' boundary, normalised.
  low, high = ((v / 255 - ds.mean[0]) / ds.std[0] for v in (127.5, 128))
  train = [c for c in calls if c[0]]
  evals = [c for c in calls if not c[0]]
  assert len(train) == config.epochs * config.steps_per_epoch, len(train)
  assert evals
  assert all(c[2].max() < low for c in train)
  assert all(c[2].min() > low and c[2].min() < high + 1e-5 for c in evals)
  arcs = [c[1] for c in train]
  assert all(not np.array_equal(a, b) for a, b in zip(arcs, arcs[1:]))


def test_consecutive_child_steps_sample_new_arcs_and_augmentations():
  """The same batch given to 6 consecutive child steps: 6 different arcs
  and 6 different crops (a micro arc of 2 nodes by chance repeats with
  probability below 1e-4 per pair; a 1-pixel crop of 8 images repeats with
  probability 9^-8)."""
  config = configs.get_config('micro_tiny')
  ds, mesh, s = _setup(config)
  calls = []
  s.model = _Spy(s.model, calls)
  fns = search.steps(config, s, mesh)
  state = search.init_state(s, ds.image_shape, config.seed, mesh)
  batch = parallel.shard_batch({'image': ds.train.images[:8],
                                'label': ds.train.labels[:8]}, mesh)
  for _ in range(6):
    state, _ = fns.child(state, batch)
  jax.block_until_ready(state)
  arcs = [c[1] for c in calls if c[0]]
  images = [c[2] for c in calls if c[0]]
  assert len(arcs) == 6
  for i in range(6):
    for j in range(i):
      assert not np.array_equal(arcs[i], arcs[j]), (i, j)
      assert not np.array_equal(images[i], images[j]), (i, j)


def test_guard_rejects_a_non_finite_new_state_with_finite_metrics():
  """`train_state.keep_if_finite` on its own: a controller update whose
  metrics are finite but whose new state holds an inf (in Adam's second
  moment, deep in the tree) keeps the old state and reports finite=False;
  integer leaves are not inspected; a finite update is taken."""
  from nasjax import train_state  # pylint: disable=g-import-not-at-top
  from nasjax.strategies import reinforce  # pylint: disable=g-import-not-at-top
  tx = reinforce.adam(0.01)
  old = reinforce.create({'w': jnp.ones((3,))}, tx)
  grads = {'w': jnp.asarray([0.1, -0.2, 0.3])}
  updates, opt_state = tx.update(grads, old.opt_state, old.params)
  good = old.replace(params={'w': old.params['w'] + updates['w']},
                     opt_state=opt_state, step=old.step + 1)
  metrics = {'loss': jnp.asarray(0.5), 'count': jnp.asarray(3)}
  state, m = train_state.keep_if_finite(old, good, metrics)
  assert bool(m['finite'])
  chex.assert_trees_all_equal(state, good)
  bad_opt = jax.tree.map(lambda x: x, opt_state)
  bad_opt = (bad_opt[0]._replace(nu={'w': jnp.asarray([1.0, jnp.inf, 1.0])}),
             *bad_opt[1:])
  bad = good.replace(opt_state=bad_opt)
  state, m = train_state.keep_if_finite(old, bad, metrics)
  assert not bool(m['finite'])
  chex.assert_trees_all_equal(state, old)


def test_a_non_finite_controller_update_stops_the_search_naming_it(tmp_path):
  """A controller whose Adam steps overflow its weights (learning rate
  1e38): the search stops at the first controller phase (end of step 1)
  with an error that names the controller update, not the child's finite
  metrics, and keeps the checkpoint before it."""
  from nasjax import loop  # pylint: disable=g-import-not-at-top
  config = configs.get_config('micro_tiny')
  config.num_devices = 1
  config.controller.learning_rate = 1e38
  with pytest.raises(loop.NonFiniteError, match=(
      r'Non-finite values in the controller update at the end of step 1 '
      r"\(the step's own metrics: \{.*'accuracy'.* the last good checkpoint "
      r'\(step 1\)')):
    search.search(config, str(tmp_path), data.load('digits'),
                  progress='none')
