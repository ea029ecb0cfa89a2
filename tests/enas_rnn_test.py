"""The ENAS recurrent cell: its space and token order, the shared cell against
the discrete cell, the controller against an independent NumPy transcription
of the corrected reference's sampler, and the search loop (binary, exact
resume, 8 devices, retraining what it finds)."""

import functools
import json
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasjax import config_checks
from nasjax import configs
from nasjax import errors
from nasjax import genotype as genotype_lib
from nasjax import parallel
from nasjax.darts import rnn
from nasjax.darts import rnn_search
from nasjax.data import ptb
from nasjax.strategies import controller as controller_lib
from nasjax.enas import lm_search
from nasjax.enas import step as step_lib
from nasjax.final import lm_train
from nasjax.search_spaces import enas as enas_space
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The space.

def test_reference_tokens_read_as_the_reference_writes_them():
  """The corrected reference writes the DARTS cell as these tokens (pairs
  prev, func; funcs tanh, relu, sigmoid, identity): read here they are
  DARTS_V2_RNN, node for node."""
  space = enas_space.RecurrentSpace(output='all')
  tokens = enas_space.from_string('0 2 1 1 1 1 1 3 2 0 5 2 3 0 5 1')
  assert space.to_genotype(space.from_tokens(tokens)) == (
      genotype_lib.DARTS_V2_RNN)
  arc = genotype_lib.get('ENAS_RNN_LM')
  assert str(arc.space.to_genotype(arc.arc)) == (
      's1=sigmoid(s0); s2=tanh(s1); s3=relu(s2); s4=sigmoid(s2); '
      's5=tanh(s4); s6=tanh(s5); s7=sigmoid(s3); s8=sigmoid(s6); '
      'concat=[1..8]')
  assert enas_space.arc_from_dict(arc.to_dict()) == arc


def test_space_counts_loose_ends_and_errors():
  space = enas_space.RecurrentSpace()
  assert space.num_architectures() == 40320 * 4 ** 8  # 8! 4^8
  assert len(space.choices()) == 16 and space.num_edges == 36
  arc = space.from_tokens([0, 0, 1, 1, 1, 2, 0, 3, 4, 0, 2, 1, 6, 1, 6, 2])
  assert space.loose_ends(arc) == [3, 5, 7, 8]
  assert space.to_genotype(arc).concat == (3, 5, 7, 8)
  for bad, match in (([1, 0] + [0, 0] * 7, 'node 1: input 1'),
                     ([0, 4] + [0, 0] * 7, 'op 4'), ([0, 0], '16 tokens')):
    with pytest.raises(ValueError, match=match):
      space.check(bad)
  with pytest.raises(ValueError, match='output'):
    enas_space.RecurrentSpace(output='first')


# The shared cell.

def _shared(space, units=8, vocab=30, seed=0):
  model = rnn.RNNModel(vocab, units, shared=space, dropout=0.3,
                       dropout_h=0.2, dropout_x=0.4, dropout_i=0.1)
  arc = jnp.zeros(space.arc_shape, jnp.int32)
  params = model.init(jax.random.key(seed), jnp.zeros((2, 2), jnp.int32),
                      jnp.zeros((2, units)), arc)['params']
  return model, params


@pytest.mark.parametrize('output', ['loose_ends', 'all'])
def test_shared_cell_equals_the_discrete_cell(output):
  """For random arcs, the shared model equals the DARTS discrete model of
  the arc's genotype given the selected (node, predecessor, activation)
  matrices, with and without dropout (same masks): the gather, the
  predecessor, the activation order and the output mean are all right."""
  space = enas_space.RecurrentSpace(num_nodes=5, output=output)
  model, params = _shared(space)
  rng = np.random.default_rng(1)
  tokens = jax.random.randint(jax.random.key(1), (3, 6), 0, 30)
  hidden = jax.random.normal(jax.random.key(2), (3, 8))
  for _ in range(4):
    arc = space.random_arc(rng)
    g = space.to_genotype(arc)
    discrete = rnn.RNNModel(30, 8, genotype=g, dropout=0.3, dropout_h=0.2,
                            dropout_x=0.4, dropout_i=0.1)
    ws = params['cell']['ws']
    picked = jnp.stack([ws[space.offset(i) + p, op]
                        for i, (p, op) in enumerate(arc, 1)])
    dparams = {**params, 'cell': {'w0': params['cell']['w0'], 'ws': picked}}
    for train in (False, True):
      rngs = {'dropout': jax.random.key(3)}
      a = model.apply({'params': params}, tokens, hidden, arc, train=train,
                      rngs=rngs)
      b = discrete.apply({'params': dparams}, tokens, hidden, train=train,
                         rngs=rngs)
      chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)


def test_one_program_every_arc_and_only_its_weights_learn():
  """The loss of the shared model, jitted once, serves three different arcs
  (one compile); the gradient of the shared matrices is nonzero exactly at
  the arc's (node, predecessor, activation) entries."""
  space = enas_space.RecurrentSpace(num_nodes=4)
  model, params = _shared(space)
  tokens = jax.random.randint(jax.random.key(1), (3, 6), 0, 30)

  def loss(p, arc):
    logits, _, _ = model.apply({'params': p}, tokens[:, :-1],
                               jnp.zeros((3, 8)), arc)
    return -jnp.mean(jax.nn.log_softmax(logits)[..., 0])

  grad = jax.jit(jax.grad(loss))
  rng = np.random.default_rng(0)
  for _ in range(3):
    arc = space.random_arc(rng)
    g = grad(params, arc)['cell']['ws']
    used = np.zeros(g.shape[:2], bool)
    for i, (p, op) in enumerate(arc, 1):
      used[space.offset(i) + p, op] = True
    nonzero = np.abs(np.asarray(g)).sum((2, 3)) > 0
    np.testing.assert_array_equal(nonzero, used)
  assert grad._cache_size() == 1  # pylint: disable=protected-access


# The controller.

def _np_lstm(x, c, h, w):
  i, f, o, g = np.split(np.concatenate([x, h]) @ w, 4)
  sig = lambda v: 1 / (1 + np.exp(-v))
  c = sig(i) * np.tanh(g) + sig(f) * c
  return c, sig(o) * np.tanh(c)


def _np_log_softmax(v):
  v = v - v.max()
  return v - np.log(np.exp(v).sum())


def _np_reference_score(p, arc, temperature, tanh_c):
  """The corrected reference's sampler (enas_lm/src/controller.py), written
  out with lists as it is, teacher-forced: (sum log p, sum (-log p) p)."""
  p = {k: np.asarray(v, np.float64) for k, v in _flat(p).items()}
  hsize = p['g_emb'].shape[0]
  c = h = np.zeros(hsize)
  all_h, all_hw = [np.zeros(hsize)], [np.zeros(hsize)]
  x, logp, ent = p['g_emb'], 0.0, 0.0
  for layer, (prev, func) in enumerate(arc, 1):
    c, h = _np_lstm(x, c, h, p['lstm/kernel'])
    all_h.append(h)
    all_hw.append(h @ p['w_attn_1'])
    q = np.tanh(np.stack(all_hw[:-1]) + h @ p['w_attn_2']) @ p['v_attn']
    q = tanh_c * np.tanh(q / temperature)
    q = q - (layer - np.arange(layer)) ** 2 / 6.0
    lp = _np_log_softmax(q)[prev]
    logp, ent = logp + lp, ent - lp * np.exp(lp)
    x = all_h[:-1][prev] / (0.1 + layer - prev)
    c, h = _np_lstm(x, c, h, p['lstm/kernel'])
    logits = tanh_c * np.tanh((p['w_emb'] @ h) / temperature)
    lp = _np_log_softmax(logits)[func]
    logp, ent = logp + lp, ent - lp * np.exp(lp)
    x = p['w_emb'][func]
  return logp, ent


def _flat(tree, prefix=''):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f'{prefix}{k}/'))
    else:
      out[prefix + k] = v
  return out


def test_controller_equals_the_reference_sampler():
  """log p and the per-token entropy of random arcs under random (large)
  controller weights equal an independent NumPy transcription of the
  reference's sampler; sampling and teacher forcing agree."""
  space = enas_space.RecurrentSpace(num_nodes=6)
  cfg = controller_lib.RECURRENT
  params = controller_lib.init(jax.random.key(0), space, cfg)
  params = jax.tree.map(lambda v: v * 60.0, params)  # Weights ~ U(-0.6, 0.6).
  assert 'w_soft' not in params
  rng = np.random.default_rng(0)
  score = functools.partial(controller_lib.log_prob, space=space, config=cfg)
  for _ in range(3):
    arc = space.random_arc(rng)
    s = score(params, arc)
    want_lp, want_ent = _np_reference_score(params, arc, cfg.temperature,
                                            cfg.tanh_constant)
    np.testing.assert_allclose(float(s.log_prob), want_lp, rtol=1e-4)
    np.testing.assert_allclose(float(s.entropy), want_ent, rtol=1e-4)
  sampled = controller_lib.sample(params, jax.random.key(5), space=space,
                                  config=cfg)
  space.check(sampled.arc)
  np.testing.assert_allclose(float(score(params, sampled.arc).log_prob),
                             float(sampled.log_prob), rtol=1e-5)


def test_controller_at_zero_weights_is_the_distance_prior():
  """With every weight zero the logits are the prior alone: node i reads j
  with probability softmax_j(-(i - j)^2 / 6), activations uniformly."""
  space = enas_space.RecurrentSpace(num_nodes=5)
  params = jax.tree.map(jnp.zeros_like, controller_lib.init(
      jax.random.key(0), space, controller_lib.RECURRENT))
  arc = np.asarray([[0, 1], [0, 2], [2, 0], [1, 3], [4, 1]])
  want = 5 * np.log(0.25)
  for i, (j, _) in enumerate(arc, 1):
    prior = -((i - np.arange(i)) ** 2) / 6.0
    want += _np_log_softmax(prior)[j]
  got = controller_lib.log_prob(params, arc, space=space,
                                config=controller_lib.RECURRENT).log_prob
  np.testing.assert_allclose(float(got), want, rtol=1e-6)


# The search loop.

def _tiny(devices=1):
  c = configs.enas_rnn('tiny')
  c.num_devices = devices
  return c


def _restore(workdir, config):
  corpus = rnn_search.load_corpus(config)
  b = lm_search.build(config, corpus.vocab_size)
  template = lm_search.init_state(b, config, parallel.make_mesh(1))
  return helpers.restore_latest(workdir, template)


def test_binary_then_resume_equals_uninterrupted(tmp_path):
  """The binary runs 2 of the 4 steps (3 windows per epoch, a controller
  phase after the third); the API resumes through the epoch boundary. Every
  checkpoint array (shared weights, controller weights, Adam state and
  baseline, the hidden state, key) and the history equal one 4-step run's;
  the files a retraining reads are written and load back."""
  config = _tiny()
  straight, split = str(tmp_path / 'straight'), str(tmp_path / 'split')
  a = lm_search.search(config, straight, progress='none')
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'enas_search.py'),
       '--config=' + os.path.join(ROOT, 'experiments', 'configs',
                                  'enas_rnn_search.py') + ':tiny',
       f'--workdir={split}', '--config.max_steps=2'],
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT), check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  b = lm_search.search(config, split, progress='none')
  assert (a.summary['start_step'], b.summary['start_step']) == (0, 2)
  a_state, meta_a = _restore(straight, config)
  b_state, meta_b = _restore(split, config)
  assert meta_a['step'] == meta_b['step'] == 4
  assert meta_a['data_position'] == {'epoch': 1, 'window': 1}
  items = a_state.checkpoint_items()
  assert set(items['carry']) == {'train'}
  assert int(items['controller'].step) == 2  # One phase of 2 updates.
  chex.assert_trees_all_equal(jax.device_get(items),
                              jax.device_get(b_state.checkpoint_items()))
  assert [r.to_dict() for r in a.history] == [r.to_dict() for r in b.history]
  assert a.arc_string == b.arc_string and a.perplexity == b.perplexity

  assert a.history[0].train['controller/reward'] > 0
  for name in ('arc.json', 'arc.svg', 'genotype.json', 'genotype.svg',
               'results.json', 'arcs/epoch_000.svg'):
    assert os.path.exists(os.path.join(straight, name)), name
  arc = genotype_lib.load(os.path.join(straight, 'arc.json'))
  with open(os.path.join(straight, 'genotype.json')) as f:
    cell = genotype_lib.from_dict(json.load(f))
  assert arc == a.genotype and lm_train.recurrent_cell(arc) == cell
  with open(os.path.join(straight, 'results.json')) as f:
    results = json.load(f)
  assert results['derive_perplexity'] == pytest.approx(a.perplexity)
  assert np.isfinite(results['random_median_perplexity'])
  tags = helpers.event_tags(os.path.join(straight, 'tb'))['scalars']
  for tag in ('train/train_loss', 'train/lr', 'controller/reward',
              'controller/baseline', 'controller/perplexity',
              'epoch/valid_perplexity', 'epoch/best_sampled_perplexity'):
    assert tag in tags, (tag, sorted(tags)[:20])


def _child_and_controller(config, devices):
  corpus = rnn_search.load_corpus(config)
  mesh = parallel.make_mesh(devices)
  b = lm_search.build(config, corpus.vocab_size)
  state = parallel.place(lm_search.init_state(b, config, mesh), mesh)
  fns = lm_search.steps(config, b, mesh, state)
  data = ptb.batchify(corpus.train, config.batch_size)
  x, y = ptb.window(data, 0, config.bptt)
  state, m1 = fns.child(state, parallel.shard_batch(
      {'inputs': x, 'targets': y}, mesh))
  valid = ptb.batchify(corpus.valid, config.batch_size)
  xs, ys = zip(*(ptb.window(valid, k * config.bptt, config.bptt)
                 for k in range(2)))
  state, m2 = fns.controller(state, parallel.shard_batch(
      {'inputs': np.stack(xs), 'targets': np.stack(ys)}, mesh, 1))
  spec = state.carry['train'].sharding.spec  # The rows' sharding, kept.
  assert spec == parallel.batch_sharding(mesh).spec, spec
  return jax.device_get(state.checkpoint_items()), jax.device_get((m1, m2))


def test_8_devices_equal_1():
  """A child step (hidden state carried, sharded by rows) and a controller
  update with the rows sharded over 8 devices equal the 1-device ones."""
  config = _tiny()
  one, m_one = _child_and_controller(config, 1)
  eight, m_eight = _child_and_controller(config, 8)
  chex.assert_trees_all_close(m_one, m_eight, rtol=1e-5, atol=1e-6)
  one.pop('rng'), eight.pop('rng')
  chex.assert_trees_all_close(one, eight, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('field,value,match', [
    ('model.output', 'first', 'model.output'),
    ('controller.baseline_decay', 1.0, 'controller.baseline_decay'),
    ('derive.num_windows', 0, 'derive.num_windows'),
    ('batch_size', 3, 'batch_size'),
])
def test_bad_config_is_a_clear_error(field, value, match):
  config = configs.enas_rnn('ptb')
  config.data.data_dir = '/data/ptb'
  helpers.override(config, **{field: value})
  with pytest.raises(errors.ConfigError, match=match):
    config_checks.check_enas_rnn_config(config, devices=2)
  with pytest.raises(errors.ConfigError, match=match):  # Before any work.
    lm_search.search(config, None, progress='none')


def test_search_vs_random_through_the_api(tmp_path):
  """`nasjax.select` with an ENAS recurrent selection config and the
  generated corpus: one search and one random arc, each retrained in the
  language model, compared by validation perplexity (lower wins)."""
  import nasjax  # pylint: disable=g-import-not-at-top
  config = configs.selection.get_config('svr_enas_rnn_tiny')
  for stage in (config.search, config.candidate_train, config.final_train):
    stage.num_devices = 1
  result = nasjax.select('synthetic', config, workdir=str(tmp_path),
                         progress='none')
  assert result.status == 'completed'
  assert [r['name'] for r in result.rows] == ['searched_0', 'random_0']
  values = {r['name']: r['validation_perplexity'] for r in result.rows}
  assert result.chosen == min(values, key=values.get)
  assert all(np.isfinite(v) and v > 1 for v in values.values())
  searched = genotype_lib.from_dict(result.rows[0]['genotype'])
  assert searched == result.searches[0].genotype


def test_non_finite_steps_leave_the_state_unchanged():
  """A NaN in the shared weights (child step) or in the controller's
  weights (controller update): the step reports finite=False and every
  checkpointed array, the hidden state included, stays as it was."""
  config = _tiny()
  corpus = rnn_search.load_corpus(config)
  mesh = parallel.make_mesh(1)
  b = lm_search.build(config, corpus.vocab_size)
  state = parallel.place(lm_search.init_state(b, config, mesh), mesh)
  fns = lm_search.steps(config, b, mesh, state)
  data = ptb.batchify(corpus.train, config.batch_size)
  x, y = ptb.window(data, 0, config.bptt)
  windows = {'inputs': np.stack([x, x]), 'targets': np.stack([y, y])}
  fresh = lambda: jax.tree.map(jnp.copy, state)  # The steps donate it.
  bad_child, bad_ctrl = fresh(), fresh()
  bad_child = bad_child.replace(params=dict(
      bad_child.params,
      embedding=bad_child.params['embedding'].at[0, 0].set(jnp.nan)))
  ctrl = bad_ctrl.controller
  bad_ctrl = bad_ctrl.replace(controller=ctrl.replace(params=dict(
      ctrl.params, w_emb=ctrl.params['w_emb'].at[0, 0].set(jnp.nan))))
  for bad, fn, batch, axis in (
      (bad_child, fns.child, {'inputs': x, 'targets': y}, 0),
      (bad_ctrl, fns.controller, windows, 1)):
    before = jax.device_get(bad.checkpoint_items())
    after, metrics = fn(bad, parallel.shard_batch(batch, mesh, axis))
    assert not bool(metrics['finite'])
    chex.assert_trees_all_equal(jax.device_get(after.checkpoint_items()),
                                before)


def test_a_diverging_child_gets_no_reward_and_does_not_stop_the_search(
    monkeypatch):
  """One of two children scores NaN (a sampled cell that overflows): the
  controller update is still taken, with reward 0 for that child, and the
  step reports it (diverged_children 1, perplexity inf). Before, the
  infinite perplexity metric made every such update count as non-finite
  and stopped the search."""
  config = _tiny()
  corpus = rnn_search.load_corpus(config)
  mesh = parallel.make_mesh(1)
  b = lm_search.build(config, corpus.vocab_size)
  state = parallel.place(lm_search.init_state(b, config, mesh), mesh)
  real = step_lib.lm_cross_entropy
  monkeypatch.setattr(
      step_lib, 'lm_cross_entropy',
      lambda params, arc, inputs, targets, **k: real(
          params, arc, inputs, targets, **k) + jnp.where(
              jnp.all(inputs == 0), jnp.nan, 0.0))
  fns = lm_search.steps(config, b, mesh, state)
  data = ptb.batchify(corpus.train, config.batch_size)
  x, y = ptb.window(data, 0, config.bptt)
  x = np.where(x == 0, 1, x)  # Only the second child's inputs are all 0.
  windows = {'inputs': np.stack([x, np.zeros_like(x)]),
             'targets': np.stack([y, y])}
  before = jax.device_get(state.controller)
  after, m = fns.controller(jax.tree.map(jnp.copy, state),
                            parallel.shard_batch(windows, mesh, 1))
  m = jax.device_get(m)
  assert bool(m['finite']) and int(m['diverged_children']) == 1
  assert np.isinf(m['perplexity']) and np.isfinite(m['min_perplexity'])
  assert np.isfinite(m['reward'])
  assert int(after.controller.step) == int(before.step) + 1
  assert not np.array_equal(jax.device_get(after.controller.params['w_emb']),
                            before.params['w_emb'])
