"""The Python API a notebook calls: README's code, results, workdir, plots."""

import os
import re

import numpy as np
import pytest

import nasjax
from nasjax import errors
from nasjax import genotype as G
from nasjax import history as history_lib
from nasjax import parallel
from nasjax.search_spaces.nb201 import table as table_lib
from tests import helpers
from tests import nb201_test

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_python() -> str:
  with open(os.path.join(ROOT, 'README.md')) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  assert blocks, 'README has no python block'
  return blocks[0]


def _small_digits(n_train=64, n_test=40):
  """A dataset from arrays: 4 search steps per epoch at batch 8."""
  ds = nasjax.data.load('digits')
  return nasjax.data.from_arrays(ds.train.images[:n_train],
                                 ds.train.labels[:n_train],
                                 ds.test.images[:n_test],
                                 ds.test.labels[:n_test], name='small')


def _tiny_search(**fields):
  c = nasjax.configs.search('tiny')
  c.search.arch_mode = 'first_order'  # The step search_test compiles too.
  c.num_devices, c.max_steps = 1, 0
  return helpers.override(c, **fields)


def test_readme_python_code_runs_at_tiny_size(tmp_path, monkeypatch):
  """README's notebook code, with the 'digits' presets swapped for 'tiny',
  runs in a fresh directory, writes nothing there, and returns objects."""
  code = _readme_python()
  assert len(code.strip().splitlines()) <= 12, code
  assert code.count("'digits')") >= 2, code
  code = code.replace("'digits')", "'tiny')").replace(
      "nasjax.data.load('tiny')", "nasjax.data.load('digits')")
  monkeypatch.chdir(tmp_path)
  scope = {}
  exec(compile(code, 'README.md', 'exec'), scope)  # pylint: disable=exec-used
  found, trained = scope['found'], scope['trained']
  assert isinstance(found, nasjax.SearchResult)
  assert isinstance(trained, nasjax.TrainResult)
  assert found.status == trained.status == 'completed'
  assert 0.0 <= trained.test_accuracy <= 1.0 and trained.param_count > 0
  assert trained.history[-1].test['accuracy'] == trained.test_accuracy
  assert os.listdir(tmp_path) == []  # No workdir: nothing written.


def test_search_result_history_is_per_epoch_and_matches_the_state():
  ds = _small_digits()
  seen = []
  found = nasjax.search(ds, _tiny_search(epochs=3), progress='none',
                        callback=lambda h: seen.append(len(h)))
  assert seen == [1, 2, 3]
  assert [r.epoch for r in found.history] == [0, 1, 2]
  assert [r.step for r in found.history] == [4, 8, 12]
  last = found.history[-1]
  final_alpha = parallel.to_host(found.state.alpha)
  for t in ('normal', 'reduce'):
    np.testing.assert_allclose(last.alpha[t].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(last.alpha[t], found.alpha[t], rtol=1e-6)
    assert last.alpha[t].shape == final_alpha[t].shape
  assert last.genotype == found.genotype == G.from_alpha(final_alpha,
                                                         found.space)
  # alpha moved between epochs (the history is not one record repeated).
  assert not np.allclose(found.history[0].alpha['normal'],
                         last.alpha['normal'])
  assert {'train_loss', 'val_loss', 'train_accuracy',
          'val_accuracy'} <= set(last.train)


def test_resumed_history_equals_uninterrupted(tmp_path):
  """A search stopped mid-epoch (step 6 of 12, epoch 1 of 3) and resumed has
  the history of one that ran straight, epoch means included."""
  ds = _small_digits()
  a = nasjax.search(ds, _tiny_search(epochs=3), workdir=str(tmp_path / 'a'),
                    progress='none')
  nasjax.search(ds, _tiny_search(epochs=3, max_steps=6),
                workdir=str(tmp_path / 'b'), progress='none')
  b = nasjax.search(ds, _tiny_search(epochs=3), workdir=str(tmp_path / 'b'),
                    progress='none')
  assert b.summary['start_step'] == 6
  assert [r.to_dict() for r in a.history] == [r.to_dict() for r in b.history]
  on_disk = history_lib.load(str(tmp_path / 'b'), 12)
  assert [r.to_dict() for r in on_disk] == [r.to_dict() for r in b.history]
  assert (tmp_path / 'b' / 'alpha.png').exists()


def test_a_workdir_of_another_config_is_refused(tmp_path):
  ds = _small_digits()
  nasjax.search(ds, _tiny_search(max_steps=2), workdir=str(tmp_path),
                progress='none')
  with pytest.raises(errors.ConfigError,
                     match=r'model\.channels: 4 in the workdir, 8 now'):
    nasjax.search(ds, _tiny_search(**{'model.channels': 8}),
                  workdir=str(tmp_path), progress='none')
  # Fields that do not change what is computed may differ: it resumes.
  again = nasjax.search(ds, _tiny_search(max_steps=3, log_every_steps=7),
                        workdir=str(tmp_path), progress='none')
  assert again.summary['start_step'] == 2


def test_retraining_a_different_genotype_in_a_used_workdir_is_refused(
    tmp_path):
  ds = _small_digits()
  config = nasjax.configs.retrain('tiny')
  config.num_devices = 1
  nasjax.retrain(ds, 'DARTS_V2', config, workdir=str(tmp_path),
                 progress='none')
  with pytest.raises(errors.ConfigError, match='genotype differs'):
    nasjax.retrain(ds, 'DARTS_V1', config, workdir=str(tmp_path),
                   progress='none')


def test_plots_of_a_real_search_history(tmp_path):
  ds = _small_digits()
  found = nasjax.search(ds, _tiny_search(epochs=2), progress='none')
  fig = nasjax.plot.alpha_history(found.history, found.space)
  drawn = [ax for ax in fig.axes if ax.lines]
  assert len(drawn) == 2 * found.space.num_edges  # Normal and reduce.
  assert all(len(ax.lines) == found.space.num_ops for ax in drawn)
  # Each line is one op's softmax weight over the epochs of the history.
  e, k = 1, 2
  np.testing.assert_allclose(
      drawn[e].lines[k].get_ydata(),
      [r.alpha['normal'][e, k] for r in found.history], rtol=1e-6)
  assert fig._repr_png_()[:4] == b'\x89PNG'
  matrix = nasjax.plot.alpha_matrix(found.history[-1], found.space)
  assert len(matrix.axes[0].images) == 1
  curves = nasjax.plot.curves(found.history)
  assert {l.get_label() for l in curves.axes[0].lines} == {'train_loss',
                                                           'val_loss'}
  # Epochs count from 0 in plots as in the logs and files, on whole ticks.
  for fig in (nasjax.plot.alpha_history(found.history, found.space), curves):
    line = next(ax for ax in fig.axes if ax.lines).lines[0]
    assert list(line.get_xdata()) == [r.epoch for r in found.history] == [0, 1]
  assert all(float(t).is_integer() for t in curves.axes[0].get_xticks())
  cell = nasjax.plot.cell(found.genotype, 'reduce')
  svg = cell._repr_svg_()
  assert svg.startswith('<svg') and svg.count('fill="none"') == 2 * 2 + 2
  nasjax.plot.save(cell, str(tmp_path / 'reduce.svg'))
  assert (tmp_path / 'reduce.svg').read_text() == svg


def test_from_arrays_checks_its_input():
  x = np.zeros((4, 8, 8, 1), np.uint8)
  y = np.array([0, 1, 2, 3])
  ds = nasjax.data.from_arrays(x, y, x, y)
  assert ds.num_classes == 4 and ds.image_shape == (8, 8, 1)
  with pytest.raises(nasjax.data.DataError, match='uint8'):
    nasjax.data.from_arrays(x.astype(np.float32), y, x, y)
  with pytest.raises(nasjax.data.DataError, match='integers'):
    nasjax.data.from_arrays(x, y.astype(np.float32), x, y)
  with pytest.raises(nasjax.data.DataError, match=r'\[0, 3\)'):
    nasjax.data.from_arrays(x, y, x, y, num_classes=3)
  with pytest.raises(nasjax.data.DataError, match='test images'):
    nasjax.data.from_arrays(x, y, np.zeros((4, 9, 9, 1), np.uint8), y)


def test_search_runs_a_named_pair_or_says_which_pairs_exist():
  ds = nasjax.data.load('digits')
  r = nasjax.search(ds, 'tiny', space='nb201', strategy='rsps',
                    progress='none')
  assert isinstance(r, nasjax.one_shot.OneShotResult)
  assert r.summary['strategy'] == 'random_sampling'
  with pytest.raises(errors.UserError, match=r"the pairs are .*'nb201', "
                     "'gdas'"):
    nasjax.search(ds, space='nb201', strategy='evolution')
  with pytest.raises(errors.UserError, match='both space= and strategy='):
    nasjax.search(ds, space='nb201')


def test_readme_nb201_block_runs_at_tiny_size(tmp_path, monkeypatch):
  """README's NAS-Bench-201 block, at the tiny preset and with a made-up
  table in place of the user's: the cell it prints is the search's, looked
  up in that table."""
  with open(os.path.join(ROOT, 'README.md')) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  code = next(b for b in blocks if 'nb201' in b)
  assert len(code.strip().splitlines()) <= 10, code
  table = nb201_test._write_table(tmp_path / 't.csv',
                                  nb201_test._synthetic_rows())
  assert "'nb201_gdas_digits'" in code and "'nb201_hp12.csv'" in code
  code = code.replace("'nb201_gdas_digits'", "'nb201_gdas_tiny'").replace(
      "'nb201_hp12.csv'", repr(table))
  monkeypatch.chdir(tmp_path)
  scope = {}
  exec(compile(code, 'README.md', 'exec'), scope)  # pylint: disable=exec-used
  found = scope['found']
  assert found.status == 'completed'
  lookup = found.summary['lookup']
  t = table_lib.load(table)
  assert lookup['cifar10-test'] == t.accuracy(found.cell, 'cifar10-test')
