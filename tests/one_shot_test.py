"""The one-shot search loop and binary: every strategy on NAS-Bench-201,
its derivation, the table lookup, and the files a run leaves."""

import json
import os

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


@pytest.mark.parametrize('strategy', ['darts', 'gdas', 'rsps', 'darts2'])
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
    configs.one_shot('nb201_enas')


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
