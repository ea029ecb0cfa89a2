"""The DARTS recurrent search loop: binary, exact resume across an epoch
(hidden states and data position), files, config errors."""

import json
import os
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from nasjax import config_checks
from nasjax import configs
from nasjax import errors
from nasjax import genotype as genotype_lib
from nasjax import parallel
from nasjax.darts import rnn_search
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny():
  c = configs.rnn_search('tiny')
  c.search.arch_mode = 'first_order'  # Compiles faster; resume is the point.
  c.num_devices = 1  # The tests see 8 devices; the binary sees 1.
  return c


def _restore(workdir, config):
  corpus = rnn_search.load_corpus(config)
  b = rnn_search.build(config, corpus.vocab_size)
  template = rnn_search.init_state(b, config, parallel.make_mesh(1))
  return helpers.restore_latest(workdir, template)


def test_binary_then_resume_equals_uninterrupted(tmp_path):
  """The binary runs 2 of the 4 steps and stops mid-epoch (3 windows per
  epoch); the API resumes through the epoch boundary, where both hidden
  states restart from zero. Every checkpoint array (weights, alpha, Adam
  state, BatchNorm statistics, both streams' hidden states, key) and the
  history equal those of one 4-step run."""
  config = _tiny()
  straight, split = str(tmp_path / 'straight'), str(tmp_path / 'split')
  a = rnn_search.search(config, straight, progress='none')
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'darts_search.py'),
       '--config=' + os.path.join(ROOT, 'experiments', 'configs',
                                  'darts_rnn_search.py') + ':tiny',
       f'--workdir={split}', '--config.max_steps=2',
       '--config.search.arch_mode=first_order'],
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT), check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'genotype: s1=' in proc.stdout
  b = rnn_search.search(config, split, progress='none')
  assert (a.summary['start_step'], b.summary['start_step']) == (0, 2)
  a_state, meta_a = _restore(straight, config)
  b_state, meta_b = _restore(split, config)
  assert meta_a['step'] == meta_b['step'] == 4
  assert meta_a['data_position'] == {'epoch': 1, 'window': 1}
  items = a_state.checkpoint_items()
  assert set(items['carry']) == {'train', 'val'}
  chex.assert_trees_all_equal(jax.device_get(items),
                              jax.device_get(b_state.checkpoint_items()))
  assert [r.to_dict() for r in a.history] == [r.to_dict() for r in b.history]
  assert len(a.history) == 2 and a.genotype == b.genotype

  for name in ('genotype.json', 'genotype.txt', 'genotype.svg',
               'history.json', 'results.json', 'genotypes/epoch_001.svg'):
    assert os.path.exists(os.path.join(straight, name)), name
  with open(os.path.join(straight, 'alpha.png'), 'rb') as f:
    assert f.read(4) == b'\x89PNG'
  again = helpers.assert_rerun_changes_nothing(
      straight, lambda: rnn_search.search(config, straight, progress='none'))
  assert again.genotype == a.genotype and again.status == 'completed'
  with open(os.path.join(straight, 'genotype.json')) as f:
    assert genotype_lib.from_dict(json.load(f)) == a.genotype
  record = a.history[-1]
  assert record.alpha['recurrent'].shape == (6, 5)
  np.testing.assert_allclose(record.alpha['recurrent'].sum(-1), 1, rtol=1e-5)
  assert np.isfinite(record.train['valid_ce'])
  tags = helpers.event_tags(os.path.join(straight, 'tb'))['scalars']
  for tag in ('train/train_loss', 'train/val_ce', 'train/lr',
              'epoch/valid_perplexity', 'epoch/train_perplexity',
              'alpha_recurrent/node2_pred1/relu'):
    assert tag in tags, (tag, sorted(tags)[:20])


@pytest.mark.parametrize('field,value,match', [
    ('data.name', 'wikitext', 'data.name'),
    ('search.arch_mode', 'weights_only', 'search.arch_mode'),
    ('model.dropout', 1.0, 'model.dropout'),
    ('search_space.primitives', ('tanh', 'relu'), 'search_space.primitives'),
    ('batch_size', 3, 'batch_size'),
])
def test_bad_config_is_a_clear_error(field, value, match):
  config = configs.rnn_search('ptb')
  config.data.data_dir = '/data/ptb'
  helpers.override(config, **{field: value})
  with pytest.raises(errors.ConfigError, match=match):
    config_checks.check_rnn_search_config(config, devices=2)
  with pytest.raises(errors.ConfigError, match=match):  # Before any work.
    rnn_search.search(config, None, progress='none')


def test_ptb_without_a_directory_names_the_field():
  config = configs.rnn_search('ptb')
  with pytest.raises(errors.ConfigError, match='config.data.data_dir'):
    rnn_search.search(config, None, progress='none')


def test_missing_ptb_directory_names_it(tmp_path):
  config = configs.rnn_search('ptb')
  config.data.data_dir = str(tmp_path / 'ptb')
  with pytest.raises(errors.UserError, match=str(tmp_path / 'ptb')):
    rnn_search.search(config, None, progress='none')


def test_search_vs_random_recurrent_tiny(tmp_path):
  """The selection runner with recurrent cells: one search and one random
  cell, each trained in the language model, compared by validation
  perplexity (lower is better), results written."""
  from nasjax.configs import selection as selection_configs  # pylint: disable=g-import-not-at-top
  from nasjax.final import selection  # pylint: disable=g-import-not-at-top
  config = selection_configs.get_config('svr_rnn_tiny')
  for stage in (config.search, config.candidate_train, config.final_train):
    stage.num_devices = 1
  corpus = rnn_search.load_corpus(config.search)
  result = selection.run(config, str(tmp_path), corpus, progress='none')
  assert result.status == 'completed'
  assert [r['name'] for r in result.rows] == ['searched_0', 'random_0']
  values = {r['name']: r['validation_perplexity'] for r in result.rows}
  assert result.chosen == min(values, key=values.get)
  assert all(np.isfinite(v) and v > 1 for v in values.values())
  assert all(np.isfinite(r['test_perplexity']) for r in result.rows)
  with open(tmp_path / 'results.json') as f:
    summary = json.load(f)
  rank = summary['search_ranks_among_random']['searched_0']
  assert rank == (1 if values['searched_0'] <= values['random_0'] else 2)
  assert genotype_lib.from_dict(result.rows[1]['genotype']).steps == 3
  assert 'validation perplexity' in result.table


@pytest.mark.parametrize('arch_mode', ['first_order', 'second_order'])
def test_the_search_step_on_8_devices_equals_1_in_float64(arch_mode):
  """Three real search steps (dropout masks, per-time-step BatchNorm over
  the batch's rows, both carried hidden states, the weight and alpha
  updates) with the batch split over 8 devices equal the same steps on one,
  to float64 round-off. Whole searches on 1 and 8 devices still part: the
  search is chaotic, and float64 round-off (7e-16 after one step) grows
  about tenfold a step (2e-11 after 10, order 1 after 40, synthetic
  preset), as any change of summation order does (docs/design.md)."""
  import functools  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from nasjax import bilevel as step_lib  # pylint: disable=g-import-not-at-top
  config = _tiny()
  config.search.arch_mode = arch_mode
  b = rnn_search.build(config, config.data.synthetic_vocab)
  rng = np.random.default_rng(0)
  batches = [{k: rng.integers(0, config.data.synthetic_vocab,
                              (config.batch_size, config.bptt))
              for k in ('inputs', 'targets')} for _ in range(6)]
  out = []
  with jax.enable_x64(True):
    for n in (1, 8):
      mesh = parallel.make_mesh(n)
      state = rnn_search.init_state(b, config, parallel.make_mesh(1))
      state = parallel.place(jax.tree.map(
          lambda a: a.astype(jnp.float64) if jnp.issubdtype(
              a.dtype, jnp.floating) else a, jax.device_get(state)), mesh)
      step = parallel.jit_step(functools.partial(
          step_lib.search_step, model=b.family, arch_mode=arch_mode,
          learning_rate=b.learning_rate, fd_radius=config.search.fd_radius,
          second_order_impl=config.search.second_order_impl),
                               mesh, num_batches=2, state=state)
      for t, v in zip(batches[::2], batches[1::2]):
        state, _ = step(state, parallel.shard_batch(t, mesh),
                        parallel.shard_batch(v, mesh))
      out.append(jax.device_get((state.params, state.alpha,
                                 state.batch_stats, state.carry)))
  chex.assert_trees_all_close(out[0], out[1], rtol=1e-12, atol=1e-12)
  chex.assert_tree_all_finite(out[0])
  assert jax.tree.leaves(out[0])[0].dtype == np.float64
