r"""Searches the NAS-Bench-201 space with each one-shot strategy and looks the
derived cells up in a NAS-Bench-201 table: how good a search is.

  python benchmarks/nb201_search.py --data_dir=/path/to/cifar-10-batches-py \
      --table=/path/to/nb201_hp12.csv --strategies=darts,gdas,rsps \
      --seeds=0,1,2 --out=/tmp/nb201.jsonl

Each (strategy, seed) is one search (`nasjax.one_shot.search`, preset
`nb201_<strategy>_subset`, overridden by the flags), run in this process one
after another. It writes one JSON line per search (the derived cell, its
`-val` and `-test` accuracy from the table, the supernet accuracy of the cell
and of random cells, wall time) and at the end a Markdown table: per strategy
the mean and standard deviation over seeds of the derived cells' test
accuracy, beside the all-skip cell, the table's best cell by validation and
random search with 10 and 100 trials (best by `-val`, reported on `-test`).

On a 2-core CPU use the CIFAR-10 subset and a small supernet (the defaults);
on an accelerator `--full` runs the NB201 paper's search (full CIFAR-10,
C=16, N=5, the presets' epochs). Without `--table` nothing is looked up;
without `--data_dir` the images are random (timing only, e.g.
`--full --max_steps=100` in accelerator_check.sh).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np

from nasjax import configs
from nasjax import data
from nasjax import one_shot
from nasjax import platform
from nasjax.search_spaces.nb201 import encoding
from nasjax.search_spaces.nb201 import table as table_lib

_DATA = flags.DEFINE_string('data_dir', None, 'cifar-10-batches-py directory.')
_TABLE = flags.DEFINE_string('table', None, 'NAS-Bench-201 table (CSV).')
_STRATEGIES = flags.DEFINE_list('strategies', ['darts', 'gdas', 'rsps'],
                                'Preset strategy names.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')
_FULL = flags.DEFINE_bool('full', False, "The NB201 paper's search: the "
                          'presets as they are (C=16, N=5, their epochs).')
_EPOCHS = flags.DEFINE_integer('epochs', 6, 'Search epochs (not --full).')
_CHANNELS = flags.DEFINE_integer('channels', 8, 'C (not --full).')
_CELLS = flags.DEFINE_integer('cells_per_stage', 2, 'N (not --full).')
_OUT = flags.DEFINE_string('out', None, 'JSON lines file to append to.')
_MAX_STEPS = flags.DEFINE_integer('max_steps', 0, 'Stop each search after '
                                  'this many steps (0: all).')
_SAMPLES = flags.DEFINE_integer('derive_samples', None, 'config.derive.'
                                'num_samples (default: the preset\'s).')
_HESSIAN = flags.DEFINE_integer(
    'hessian_every_epochs', 0, 'config.hessian.every_epochs: record the '
    "dominant eigenvalues of the architecture loss's Hessian (DARTS only).")
_OBJECTIVE = flags.DEFINE_enum('hessian_objective', 'val',
                               ['val', 'unrolled'], 'config.hessian.objective.')
_UNSELECTED = flags.DEFINE_enum(
    'unselected_weights', None, ['reference', 'drop', 'every_op'],
    "config.model.unselected_weights (default: the preset's).")


def _config(strategy, seed):
  c = configs.one_shot(f'nb201_{strategy}' + ('' if _FULL.value else
                                              '_subset'))
  c.seed, c.table = seed, _TABLE.value or ''
  c.data.data_dir = _DATA.value or ''
  c.max_steps = _MAX_STEPS.value
  if _SAMPLES.value:
    c.derive.num_samples = _SAMPLES.value
  if _UNSELECTED.value:
    c.model.unselected_weights = _UNSELECTED.value
  if _HESSIAN.value and c.strategy.name == 'darts':
    c.hessian.every_epochs = _HESSIAN.value
    c.hessian.objective = _OBJECTIVE.value
  if not _FULL.value:
    c.epochs = _EPOCHS.value
    c.model.channels, c.model.cells_per_stage = _CHANNELS.value, _CELLS.value
  return c


def main(argv):
  del argv
  platform.setup()
  if _DATA.value:
    dataset = data.get_dataset('cifar10', _DATA.value, (32, 32, 3))
  else:  # Random images of CIFAR-10's shape: timing only.
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10_000, 32, 32, 3), np.uint8)
    labels = rng.integers(0, 10, 10_000).astype(np.int32)
    dataset = data.from_arrays(images, labels, images[:1000], labels[:1000],
                               name='random')
  rows = []
  for strategy in _STRATEGIES.value:
    for seed in map(int, _SEEDS.value):
      c = _config(strategy, seed)
      t0 = time.time()
      r = one_shot.search(c, None, dataset, progress='lines')
      row = {'strategy': strategy, 'seed': seed, 'cell': r.cell_string,
             **{k: v for k, v in r.summary.get('lookup', {}).items()
                if k != 'table'},
             'supernet_accuracy': r.summary['supernet_accuracy'],
             'random_supernet_accuracy_median':
                 r.summary['random_supernet_accuracy_median'],
             'epochs': c.epochs, 'channels': c.model.channels,
             'cells_per_stage': c.model.cells_per_stage,
             'train_images': len(dataset.train),
             'unselected_weights': c.model.unselected_weights,
             'median_step_seconds': r.summary['median_step_seconds'],
             'wall_seconds': time.time() - t0}
      # Parameter-free ops (none, skip_connect, avg_pool_3x3) in the cell:
      # 6 is the all-skip collapse's count.
      row['parameter_free_ops'] = sum(
          encoding.OPS[k] in ('none', 'skip_connect', 'avg_pool_3x3')
          for k in r.cell)
      if c.hessian.every_epochs:
        row['hessian_max_eigenvalue'] = [
            h.train.get('hessian_max_eigenvalue') for h in r.history]
        row['parameter_free_ops_by_epoch'] = [
            sum(encoding.OPS[k] in ('none', 'skip_connect', 'avg_pool_3x3')
                for k in encoding.from_string(h.arcs[0]['arc']))
            for h in r.history]
      row['device'] = str(jax.devices()[0].device_kind)
      print(json.dumps(row), flush=True)
      rows.append(row)
      if _OUT.value:
        with open(_OUT.value, 'a') as f:
          f.write(json.dumps(row) + '\n')
  if not _TABLE.value:
    return
  t = table_lib.load(_TABLE.value)
  print('\n| strategy | cifar10-test of the derived cell, mean +- std | '
        'cells | minutes per search |\n|---|---|---|---|')
  for strategy in _STRATEGIES.value:
    acc = [r['cifar10-test'] for r in rows if r['strategy'] == strategy]
    cells = [r['cell'] for r in rows if r['strategy'] == strategy]
    minutes = np.mean([r['wall_seconds'] for r in rows
                       if r['strategy'] == strategy]) / 60
    cells = '<br>'.join(f'`{c}`'.replace('|', '\\|') for c in cells)
    print(f'| {strategy} | {np.mean(acc):.2f} +- {np.std(acc):.2f} | '
          f'{cells} | {minutes:.0f} |')
  skip, best = (1,) * 6, t.best('cifar10-val')
  print(f'| all-skip cell | {t.accuracy(skip, "cifar10-test"):.2f} | | |')
  print(f'| best cell by cifar10-val | {t.accuracy(best, "cifar10-test"):.2f}'
        ' | | |')
  for k in (10, 100):
    m, s = t.random_search(k, repeats=2000)
    print(f'| random search, {k} cells | {m:.2f} +- {s:.2f} | | |')


if __name__ == '__main__':
  app.run(main)
