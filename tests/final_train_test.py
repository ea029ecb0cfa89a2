"""Training from scratch: exact resume, NaN stop, the binary, augmentation."""

import json
import os
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from nasjax import data
from nasjax.data import pipeline
from nasjax.configs import darts_train as configs
from nasjax import augment
from nasjax import genotype as G
from nasjax.final import train
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENOTYPE = helpers.TINY_GENOTYPE


def _config(**overrides):
  c = configs.get_config('tiny')
  c.num_devices = 1
  c.train.drop_path_prob = 0.3  # Exercise the drop-path rng on resume.
  return helpers.override(c, **overrides)


def _restore(workdir, config):
  ds = data.get_dataset('digits')
  model, tx, _, _, _ = train.build(config, ds, GENOTYPE, 10)
  template = train.init_state(model, tx, ds.image_shape, 0,
                              train.parallel.make_mesh(1))
  return helpers.restore_latest(workdir, template)


def test_resume_equals_uninterrupted(tmp_path):
  ds = data.get_dataset('digits')
  straight, split = tmp_path / 'straight', tmp_path / 'split'
  a = train.train(_config(max_steps=4), str(straight), ds, GENOTYPE)
  train.train(_config(max_steps=2), str(split), ds, GENOTYPE)
  b = train.train(_config(max_steps=4), str(split), ds, GENOTYPE)
  assert a.summary['start_step'] == 0 and b.summary['start_step'] == 2
  assert a.summary['step'] == b.summary['step'] == 4
  assert a.test_accuracy == b.test_accuracy
  sa, _ = _restore(str(straight), _config())
  sb, _ = _restore(str(split), _config())
  chex.assert_trees_all_equal(jax.device_get(sa.checkpoint_items()),
                              jax.device_get(sb.checkpoint_items()))


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = _config(max_steps=6, checkpoint_every_steps=1)
  config.optimizer.learning_rate = 1e30
  config.optimizer.grad_clip = 0.0
  with pytest.raises(FloatingPointError, match='Non-finite loss or gradient at step'):
    train.train(config, str(tmp_path), data.get_dataset('digits'), GENOTYPE)
  state, _ = _restore(str(tmp_path), config)
  assert state is not None
  chex.assert_tree_all_finite(state.params)


def test_binary_smoke_run(tmp_path):
  """darts_train.py on a genotype file written as a search writes it."""
  G.write_files(GENOTYPE, str(tmp_path / 'searched'))
  out = helpers.run_binary('darts_train', 'tiny',
                           f'--config.genotype={tmp_path / "searched.json"}',
                           f'--workdir={tmp_path / "run"}')
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads((tmp_path / 'run' / 'results.json').read_text())
  assert results['status'] == 'completed' and results['step'] == 2
  assert results['test_examples'] == len(data.get_dataset('digits').test)
  assert 0 <= results['test_accuracy'] <= 1 and results['param_count'] > 0
  assert G.from_dict(results['genotype']) == GENOTYPE
  assert os.listdir(tmp_path / 'run' / 'tb')
  assert 'ETA' in out.stderr and 'orbax' not in out.stderr
  # Run again, it reports the finished run and rewrites nothing.
  again = helpers.assert_rerun_changes_nothing(
      tmp_path / 'run', lambda: helpers.run_binary(
          'darts_train', 'tiny',
          f'--config.genotype={tmp_path / "searched.json"}',
          f'--workdir={tmp_path / "run"}'))
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'is complete already' in again.stderr
  assert f'{results["test_accuracy"]:.4f}' in again.stdout + again.stderr


def test_unknown_genotype_name_fails_before_any_work(tmp_path):
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'darts_train.py'),
       '--config=' + os.path.join(ROOT, 'experiments', 'configs',
                                  'darts_train.py') + ':tiny',
       '--config.genotype=DARTS_V9', f'--workdir={tmp_path}'],
      capture_output=True, text=True, timeout=300, check=False,
      env=dict(os.environ, PYTHONPATH=ROOT))
  assert out.returncode != 0
  assert "Unknown genotype 'DARTS_V9'" in out.stderr
  assert 'DARTS_V2' in out.stderr


def test_cutout_zeroes_one_clipped_square():
  x = np.ones((64, 12, 12, 1), np.float32)
  y = np.asarray(augment.cutout(x, jax.random.key(0), 4))
  zeros = (y == 0).sum((1, 2, 3))
  assert zeros.max() == 16 and zeros.min() >= 4  # Clipped at corners: 2x2.
  for img in y[:, :, :, 0]:
    rows, cols = np.nonzero(img == 0)
    assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
    assert len(rows) == (rows.max() - rows.min() + 1) * (
        cols.max() - cols.min() + 1)


def test_eval_batches_cover_every_example_once():
  split = pipeline.Split(np.zeros((10, 2, 2, 1), np.uint8),
                         np.arange(10, dtype=np.int32))
  got = list(pipeline.eval_batches(split, 4))
  assert [b['image'].shape[0] for b in got] == [4, 4, 4]
  labels = np.concatenate([b['label'][b['mask'] > 0] for b in got])
  np.testing.assert_array_equal(labels, np.arange(10))
  halves = [list(pipeline.eval_batches(split, 4, process_index=i,
                                       process_count=2)) for i in (0, 1)]
  np.testing.assert_array_equal(
      np.concatenate([halves[0][0]['label'], halves[1][0]['label']]),
      got[0]['label'])


def _table_rows(text):
  return {cells[0]: cells[1:] for cells in (
      [c.strip() for c in line.strip('|').split('|')]
      for line in text.splitlines() if line.startswith('| ')
      and not line.startswith('| candidate'))}


def test_search_vs_random_tiny_end_to_end(tmp_path):
  from nasjax.configs import selection as configs_lib  # pylint: disable=g-import-not-at-top
  from nasjax.final import selection  # pylint: disable=g-import-not-at-top
  config = configs_lib.get_config('svr_tiny')
  config.search.num_devices = config.candidate_train.num_devices = 1
  result = selection.run(config, str(tmp_path), data.get_dataset('digits'))
  names = [r['name'] for r in result.rows]
  assert names == ['searched_0', 'random_0', 'random_1']
  assert result.metric == 'test_accuracy' and result.final is None
  genotypes = [G.from_dict(r['genotype']) for r in result.rows]
  assert genotypes[0] == G.from_dict(
      json.loads((tmp_path / 'search_0' / 'genotype.json').read_text()))
  assert genotypes[1] != genotypes[2]
  # Every genotype was trained: its training accuracy over the 60 steps
  # (960 examples; one standard deviation of chance accuracy is 0.01) is
  # well above chance (0.1). Not the test accuracy: after 60 steps the
  # running BatchNorm statistics that inference uses are still far off.
  results = {n: json.loads((tmp_path / f'candidate_{n}' / 'results.json')
                           .read_text()) for n in names}
  for n in names:
    assert results[n]['step'] == config.candidate_train.max_steps
    assert results[n]['test_examples'] == len(data.get_dataset('digits').test)
    assert results[n]['last_epoch_metrics']['accuracy'] > 0.15, (
        n, results[n])
  # The table and the summary report the per-genotype results files.
  table = (tmp_path / 'results.md').read_text()
  assert table.strip() == result.table
  rows = _table_rows(table)
  assert set(rows) == set(names)
  for n in names:
    assert rows[n][1:] == [f"{results[n]['test_accuracy']:.4f}",
                           f"{results[n]['param_count']:,}"]
  rand = [results[n]['test_accuracy'] for n in names[1:]]
  searched = results['searched_0']['test_accuracy']
  summary = result.summary
  assert summary['random']['mean'] == pytest.approx(np.mean(rand))
  assert summary['search_ranks_among_random']['searched_0'] == 1 + sum(
      a > searched for a in rand)
  assert f'random (2): mean {np.mean(rand):.4f}' in table


def test_darts_protocol_tiny_selects_on_held_out_data(tmp_path):
  """Two searches with seeds 2 and 3, each candidate trained on 75 % of the
  training split and compared on the other 25 % (never on the test split),
  the best trained on all of it and tested."""
  from nasjax.configs import selection as configs_lib  # pylint: disable=g-import-not-at-top
  from nasjax.final import selection  # pylint: disable=g-import-not-at-top
  config = configs_lib.get_config('darts_tiny')
  for stage in (config.search, config.candidate_train, config.final_train):
    stage.num_devices = 1
  ds = data.get_dataset('digits')
  result = selection.run(config, str(tmp_path), ds)
  assert [r['name'] for r in result.rows] == ['searched_0', 'searched_1']
  assert [r['seed'] for r in result.rows] == [2, 3]
  assert result.metric == 'validation_accuracy'
  held_out = len(ds.train) - int(round(len(ds.train) * 0.75))
  for r in result.rows:
    res = json.loads((tmp_path / f"candidate_{r['name']}" / 'results.json')
                     .read_text())
    assert res['test_examples'] == held_out  # Compared on held-out data.
    assert res['test_accuracy'] == r['validation_accuracy']
  best = max(result.rows, key=lambda r: r['validation_accuracy'])
  assert result.chosen == best['name']
  final = json.loads((tmp_path / f"final_{best['name']}" / 'results.json')
                     .read_text())
  assert final['test_examples'] == len(ds.test)
  assert G.from_dict(final['genotype']) == G.from_dict(best['genotype'])
  assert result.final.test_accuracy == final['test_accuracy']
  assert 'final: ' + best['name'] in result.table
  # Different seeds searched differently.
  assert result.searches[0].genotype != result.searches[1].genotype
