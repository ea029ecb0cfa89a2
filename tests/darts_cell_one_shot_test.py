"""The DARTS cell through the one-shot loop (GDAS, RSPS, ENAS's micro
controller): apart from `one_shot_test.py` so that the two heaviest groups
of one-shot searches run on different test workers."""

import jax
import pytest

from nasjax import configs
from nasjax import data
from nasjax import one_shot
from tests import helpers


@pytest.mark.parametrize('strategy', ['gdas', 'rsps', 'enas'])
def test_the_darts_cell_is_searched_by_gdas_rsps_and_enas(strategy, tmp_path):
  """The DARTS cell through the one-shot loop: a genotype derived by the
  DARTS rule (GDAS), the best random genotype (RSPS) or the best of the
  micro controller's samples (ENAS), written as the reference writes it."""
  from nasjax import genotype  # pylint: disable=g-import-not-at-top
  from nasjax.search_spaces import darts_cell_one_shot  # pylint: disable=g-import-not-at-top
  c = configs.one_shot(f'darts_cell_{strategy}_tiny')
  ds = data.load('digits')
  if strategy == 'enas':  # A whole epoch (4 steps), then the controller's.
    c.max_steps, ds = 0, helpers.small_digits()
  result = one_shot.search(c, str(tmp_path), ds, progress='none')
  s = result.summary
  assert result.status == 'completed' and s['space'] == 'darts_cell'
  assert isinstance(result.cell, genotype.Genotype)
  assert s['cell'] == genotype.to_notation(result.cell)
  if strategy == 'gdas':
    assert result.cell == darts_cell_one_shot.SPACE.from_alpha(
        jax.device_get(result.state.alpha))
  elif strategy == 'rsps':
    assert s['supernet_accuracy'] == s['random_supernet_accuracy_best']
  else:
    assert s['supernet_accuracy'] >= s['sampled_supernet_accuracy_median']
    assert result.history[0].train['controller/reward'] >= 0
  assert result.history[0].alpha['normal'].shape == (14, 8)
  with open(tmp_path / 'cell.txt') as f:
    assert genotype.from_notation(f.read()) == result.cell
  assert 'lookup' not in s
