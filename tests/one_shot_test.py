"""The one-shot search loop and binary: every strategy on NAS-Bench-201,
its derivation, the table lookup, and the files a run leaves."""

import json
import os

import jax
import numpy as np
import pytest

from nasjax import configs
from nasjax import data
from nasjax import errors
from nasjax import one_shot
from nasjax.search_spaces.nb201 import encoding
from nasjax.search_spaces.nb201 import table as table_lib
from tests import helpers
from tests import nb201_test


@pytest.fixture(scope='module')
def table_path(tmp_path_factory):
  """A made-up table of every cell (the shared one may be absent)."""
  return nb201_test._write_table(tmp_path_factory.mktemp('t') / 't.csv',
                                 nb201_test._synthetic_rows())


@pytest.mark.parametrize('strategy', ['darts', 'gdas', 'rsps', 'darts2',
                                      'enas'])
def test_each_strategy_searches_derives_and_looks_the_cell_up(
    strategy, table_path, tmp_path):
  c = configs.one_shot(f'nb201_{strategy}_tiny')
  c.table = table_path
  result = one_shot.search(c, str(tmp_path), data.load('digits'),
                           progress='none')
  assert result.status == 'completed'
  cell = encoding.check(result.cell)
  s = result.summary
  assert s['cell'] == result.cell_string == encoding.to_string(cell)
  assert s['strategy'] == c.strategy.name and s['step'] == 2
  if strategy == 'rsps':  # The best of the scored random cells.
    assert s['supernet_accuracy'] == s['random_supernet_accuracy_best']
  elif strategy == 'enas':  # The best of the controller's samples.
    assert s['supernet_accuracy'] >= s['sampled_supernet_accuracy_median']
  else:  # The largest alpha on every edge.
    alpha = result.state.alpha['cell']
    assert cell == tuple(int(k) for k in np.argmax(np.asarray(alpha), -1))
  t = table_lib.load(table_path)
  lookup = s['lookup']
  assert lookup['cifar10-test'] == t.accuracy(cell, 'cifar10-test')
  assert lookup['cifar10-val'] == t.accuracy(cell, 'cifar10-val')
  assert lookup['index'] == t.index(cell)
  assert lookup['all_skip_test'] == t.accuracy((1,) * 6, 'cifar10-test')
  assert lookup['best_by_val'] == encoding.to_string(t.best('cifar10-val'))
  with open(tmp_path / 'cell.txt') as f:
    assert f.read().strip() == s['cell']
  with open(tmp_path / 'results.json') as f:
    assert json.load(f) == s
  history = result.history
  assert len(history) == 1 and history[0].alpha['cell'].shape == (6, 5)
  again = helpers.assert_rerun_changes_nothing(
      tmp_path, lambda: one_shot.search(c, str(tmp_path), data.load('digits'),
                                        progress='none'))
  assert again.cell == cell




def test_enas_controller_phases_resume_exactly(tmp_path):
  """ENAS on NB201 with 4 steps per epoch and a controller phase (2
  updates of 2 cells) after each: stopped at step 6 (after one phase,
  mid-epoch) and resumed, it ends with the state, history and cell of a run
  that went straight; the controller learnt (its weights moved).
  Catches: the controller's batches restarting on resumption, the phase
  run at the wrong step."""
  ds = helpers.small_digits()

  def config(max_steps):
    c = configs.one_shot('nb201_enas_tiny')
    c.epochs, c.max_steps = 3, max_steps
    return c

  a = one_shot.search(config(0), str(tmp_path / 'a'), ds, progress='none')
  one_shot.search(config(6), str(tmp_path / 'b'), ds, progress='none')
  b = one_shot.search(config(0), str(tmp_path / 'b'), ds, progress='none')
  assert b.summary['start_step'] == 6 and a.summary['step'] == 12
  assert [r.to_dict() for r in a.history] == [r.to_dict() for r in b.history]
  assert a.cell == b.cell
  leaves = lambda s: jax.tree.leaves(jax.device_get(
      s.replace(rng=jax.random.key_data(s.rng)).checkpoint_items()))
  for x, y in zip(leaves(a.state), leaves(b.state)):
    np.testing.assert_array_equal(x, y)
  rewards = [r.train['controller/reward'] for r in a.history]
  assert len(rewards) == 3 and all(0 <= v <= 1 for v in rewards)
  init = one_shot.strategy_of(config(0)).init_alpha(
      jax.random.split(jax.random.key(0), 3)[1], {'cell': (6, 5)})
  moved = jax.tree.map(lambda u, v: float(np.abs(u - v).max()),
                       jax.device_get(a.state.alpha['controller']),
                       jax.device_get(init['controller']))
  assert max(jax.tree.leaves(moved)) > 0


def test_bad_one_shot_configs_are_refused_naming_the_field():
  c = configs.one_shot('nb201_gdas_tiny')
  c.strategy.arch_mode = 'weights_only'
  with pytest.raises(errors.ConfigError, match='strategy.arch_mode'):
    one_shot.search(c, None, data.load('digits'), progress='none')
  c = configs.one_shot('nb201_gdas_tiny')
  c.strategy.tau_mn = 0.5
  with pytest.raises(errors.ConfigError, match='Did you mean '
                     'config.strategy.tau_max or config.strategy.tau_min'):
    one_shot.search(c, None, data.load('digits'), progress='none')
  with pytest.raises(errors.ConfigError, match="Unknown config variant"):
    configs.one_shot('nb201_evolution')
  with pytest.raises(errors.ConfigError, match="Unknown config variant"):
    configs.one_shot('darts_cell_darts')
  c = configs.one_shot('darts_cell_gdas_tiny')
  c.table = '/some/nb201.csv'
  with pytest.raises(errors.ConfigError, match='config.table'):
    one_shot.search(c, None, data.load('digits'), progress='none')
  c = configs.one_shot('darts_cell_rsps_tiny')
  c.strategy.name = 'darts'
  with pytest.raises(errors.ConfigError, match='darts_cell space is searched '
                     "by \\['enas', 'gdas', 'random_sampling'\\]"):
    one_shot.search(c, None, data.load('digits'), progress='none')
  c = configs.one_shot('nb201_enas_tiny')
  c.strategy.controller.num_aggregate = 0
  with pytest.raises(errors.ConfigError,
                     match='strategy.controller.num_aggregate'):
    one_shot.search(c, None, data.load('digits'), progress='none')


def test_the_search_binary_runs_a_pair_and_refuses_other_configs(tmp_path):
  r = helpers.run_binary('search', 'nb201_gdas_tiny',
                         f'--workdir={tmp_path / "run"}',
                         config_file='one_shot_search')
  assert r.returncode == 0, r.stderr[-3000:]
  with open(tmp_path / 'run' / 'cell.txt') as f:
    assert f'cell: {f.read().strip()}' in r.stdout
  r = helpers.run_binary('search', 'tiny', f'--workdir={tmp_path / "bad"}',
                         config_file='darts_search')
  assert r.returncode == 2
  assert 'not a field of a one_shot_search config' in (
      r.stderr.strip().splitlines()[-1])
  assert not os.path.exists(tmp_path / 'bad')
