"""Retraining a recurrent genotype: counts, averaged SGD, padded windows,
binary and exact resume."""

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

from nasjax import configs
from nasjax import errors
from nasjax import genotype as genotype_lib
from nasjax import parallel
from nasjax.darts import rnn
from nasjax.darts import rnn_search
from nasjax.data import ptb
from nasjax.final import lm_train
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('name,count', [('DARTS_V2_RNN', 22_960_000),
                                        ('ENAS_RNN', 27_295_000)])
def test_parameter_counts_match_the_papers(name, count):
  """850 units, 10,000 words, the decoder tied to the embedding (counted
  once): 22.96M for DARTS (its Table 2: 23M), 27.295M for ENAS's 11-node
  cell (24M in ENAS's Table 1; darts.md 6)."""
  model = lm_train.make_model(configs.language_model('ptb'), 10_000,
                              genotype_lib.get(name))
  assert lm_train.param_count(model) == count


def _tiny_state(genotype=genotype_lib.DARTS_V1_RNN, rows=4, units=6):
  model = rnn.RNNModel(30, units, genotype=genotype, dropout=0.1,
                       dropout_h=0.1, dropout_x=0.1, dropout_i=0.1,
                       dropout_e=0.1)
  v = model.init(jax.random.key(0), jnp.zeros((2, 3), jnp.int32),
                 jnp.zeros((2, units)))
  tx = lm_train.optim.weight_optimizer(5.0, momentum=0.0, weight_decay=8e-7,
                                       clip=0.25)
  state = lm_train.LMState.create_lm(
      params=v['params'], tx=tx, rng=jax.random.key(1),
      carry={'train': 0.1 * jnp.ones((rows, units))})
  return model, state


def _window(seed, length, rows=4):
  t = np.random.default_rng(seed).integers(0, 30, (rows, length + 1))
  return {'inputs': t[:, :-1].astype(np.int32),
          'targets': t[:, 1:].astype(np.int32)}


def test_average_is_the_mean_of_the_iterates_since_the_switch():
  model, state = _tiny_state()
  family = rnn.LanguageModel(model, bptt=5)
  step = jax.jit(functools.partial(lm_train.train_step, family=family))
  for seed in range(2):
    state, _ = step(state, _window(seed, 5))
  chex.assert_trees_all_equal(state.eval_params(), state.params)
  state = lm_train.start_averaging(state)
  seen = []
  for seed in range(2, 5):
    state, metrics = step(state, _window(seed, 5))
    assert bool(metrics['finite'])
    seen.append(state.params)
  assert int(state.average_count) == 3
  mean = jax.tree.map(lambda *p: sum(p) / len(p), *seen)
  chex.assert_trees_all_close(state.average, mean, rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(state.eval_params(), mean, rtol=1e-5, atol=1e-7)
  gap = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), mean,
                     state.params)
  assert max(jax.tree.leaves(gap)) > 1e-5  # The average is not the last.


def test_padded_window_equals_the_unpadded_window():
  """A window of 7 tokens padded to 10 (masked): the same loss, gradient,
  carried hidden state and update scale (7 / bptt) as the 7-token window.
  No dropout: masks are drawn for the padded shape."""
  _, state = _tiny_state()
  model = rnn.RNNModel(30, 6, genotype=genotype_lib.DARTS_V1_RNN, dropout=0.,
                       dropout_h=0., dropout_x=0., dropout_i=0., dropout_e=0.)
  family = rnn.LanguageModel(model, bptt=5)
  tokens = np.random.default_rng(0).integers(0, 30, (4, 12)).astype(np.int32)
  plain = dict(zip(('inputs', 'targets'), ptb.window(tokens, 0, 7)))
  padded = lm_train.padded_window(tokens, 0, 7, 10)
  np.testing.assert_array_equal(padded['inputs'][:, :7], plain['inputs'])
  np.testing.assert_array_equal(padded['mask'].sum(1), 7)
  results = []
  for batch in (plain, padded):
    inputs = family.prepare(state.rng, state.step, 0, batch,
                            state.carry['train'])
    (loss, (_, aux)), grads = jax.value_and_grad(family.loss, has_aux=True)(
        state.params, {}, {}, inputs)
    results.append((loss, aux['carry'], grads,
                    jnp.asarray(family.update_scale(inputs), jnp.float32)))
  chex.assert_trees_all_close(results[0], results[1], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(results[0][3], 7 / 5)


def _restore(workdir, config):
  corpus = rnn_search.load_corpus(config)
  model = lm_train.make_model(config, corpus.vocab_size,
                              genotype_lib.get(config.genotype))
  v = model.init(jax.random.key(0), jnp.zeros((2, 2), jnp.int32),
                 jnp.zeros((2, model.units)))
  tx = lm_train.optim.weight_optimizer(1.0, momentum=0.0, weight_decay=0.0,
                                       clip=1.0)
  template = parallel.replicate(lm_train.LMState.create_lm(
      params=v['params'], tx=tx, rng=jax.random.key(0),
      carry=rnn.initial_carry({'train': config.batch_size}, model.units)),
                                parallel.make_mesh(1))
  return (model,) + helpers.restore_latest(workdir, template)


def test_binary_then_resume_equals_uninterrupted_and_evaluates_the_average(
    tmp_path):
  """The binary trains 3 steps (one epoch, whose end triggers averaging)
  and stops; the API resumes and averages over the second epoch. Every
  checkpoint array, the history and the results equal one 6-step run's;
  the reported validation and test perplexities are those of the averaged
  weights (recomputed here), not of the last weights."""
  config = configs.language_model('tiny')
  config.num_devices = 1  # The tests see 8 devices; the binary sees 1.
  straight, split = str(tmp_path / 'straight'), str(tmp_path / 'split')
  a = lm_train.train(config, straight, progress='none')
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'darts_train.py'),
       '--config=' + os.path.join(ROOT, 'experiments', 'configs',
                                  'lm_train.py') + ':tiny',
       f'--workdir={split}', '--config.max_steps=3'],
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT), check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  b = lm_train.train(config, split, progress='none')
  assert (a.summary['start_step'], b.summary['start_step']) == (0, 3)
  model, sa, meta = _restore(straight, config)
  _, sb, _ = _restore(split, config)
  assert meta['step'] == 6
  chex.assert_trees_all_equal(jax.device_get(sa.checkpoint_items()),
                              jax.device_get(sb.checkpoint_items()))
  assert [r.to_dict() for r in a.history] == [r.to_dict() for r in b.history]
  assert a.summary['averaged_steps'] == 3 and bool(sa.averaging)
  assert a.test_perplexity == b.test_perplexity

  corpus = rnn_search.load_corpus(config)
  evaluate = functools.partial(rnn.evaluate, model, bptt=config.bptt)
  valid = jnp.asarray(ptb.batchify(corpus.valid, config.eval_batch_size))
  test = jnp.asarray(ptb.batchify(corpus.test, config.test_batch_size))
  on_average = float(jnp.exp(evaluate(sa.average, {}, None, test)))
  on_last = float(jnp.exp(evaluate(sa.params, {}, None, test)))
  np.testing.assert_allclose(a.test_perplexity, on_average, rtol=1e-5)
  assert abs(on_last - on_average) > 1e-4 * on_average
  np.testing.assert_allclose(
      a.history[-1].train['valid_perplexity'],
      float(jnp.exp(evaluate(sa.average, {}, None, valid))), rtol=1e-5)
  with open(os.path.join(straight, 'results.json')) as f:
    results = json.load(f)
  assert results['param_count'] == a.param_count
  assert os.path.exists(os.path.join(straight, 'genotype.svg'))
  again = helpers.assert_rerun_changes_nothing(
      straight, lambda: lm_train.train(config, straight, progress='none'))
  assert again.test_perplexity == a.test_perplexity


def test_a_convolutional_genotype_is_a_clear_error():
  config = configs.language_model('tiny')
  config.num_devices, config.genotype = 1, 'DARTS_V2'
  with pytest.raises(errors.ConfigError, match='not a recurrent cell'):
    lm_train.train(config, None, progress='none')


def test_nonmonotone_trigger_waits_for_nonmono_epochs():
  """The reference's condition: switch when the validation loss exceeds the
  best of the epochs before the last `nonmono`."""
  config = configs.language_model('tiny')
  config.optimizer.average_from_epoch = 0
  config.optimizer.nonmono = 5
  config.epochs, config.max_steps, config.num_devices = 2, 0, 1
  r = lm_train.train(config, None, progress='none')
  assert not r.summary['averaging']   # 2 epochs < nonmono: never.
  assert all(rec.train['averaging'] == 0.0 for rec in r.history)


def test_nonmonotone_trigger_on_rising_and_falling_losses():
  """Switch when this epoch's loss is worse than the best of the epochs
  before the last `nonmono` (the reference's `val_loss > min(best[:-n])`,
  checked only once more than `nonmono` epochs are recorded)."""
  t = lm_train.nonmonotone_trigger
  falling = [5.0, 4.0, 3.0, 2.5, 2.0, 1.9, 1.8]
  assert not any(t(falling[:k], falling[k], 2) for k in range(len(falling)))
  # Rising after a minimum at epoch 1: with nonmono 2 the epochs compared
  # are those before the last two.
  losses = [5.0, 3.0, 3.5, 3.6]
  assert not t(losses[:2], 3.9, 2)       # 2 recorded: too few.
  assert not t(losses[:3], 4.9, 2)       # best of [5.0] is 5.0: not worse.
  assert t(losses[:3], 5.1, 2)           # worse than 5.0.
  assert t(losses, 3.05, 2)              # best of [5.0, 3.0] is 3.0.
  assert not t(losses, 2.95, 2)
  assert not t(losses, 3.0, 2)           # equal is not worse.
  # nonmono 0: against every earlier epoch.
  assert t([2.0, 1.0], 1.5, 0) and not t([], 9.0, 0)
