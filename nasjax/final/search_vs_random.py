"""Search vs random: a DARTS genotype against random genotypes, trained alike.

Random search is a strong baseline for NAS (Li & Talwalkar, 2019; Yu et al.,
2020), so a search result means little until it beats genotypes drawn at
random from the same space. `run(config, workdir, dataset)`:

1. runs a DARTS search (`config.search`, a darts_search config) in
   `workdir/search` and derives its genotype;
2. samples `config.num_random` genotypes uniformly from the same space
   (`genotype.random_genotype`: per node two distinct inputs, ops uniform
   over the space's ops except 'none');
3. trains every genotype from scratch with the same config (`config.train`,
   a darts_train config) and the same seed, in `workdir/train_<name>`;
4. writes `results.json` and `results.md` (a table of test accuracy and
   parameter count; mean, spread and best of the random genotypes; the
   searched genotype's rank) and returns the summary.

If a stage is interrupted (SIGTERM), it returns {'status': 'interrupted',
'stage': ...} at once and writes no results.

Every stage resumes from its own workdir, so re-running after an interrupt
continues where it stopped.

Synopsis:

  summary = run(config, '/tmp/svr', data.get_dataset('cifar10', path))
"""

import json
import os

from absl import logging
import ml_collections
import numpy as np

from data import pipeline
from nasjax import config_checks
from nasjax import genotype as genotype_lib
from nasjax import loop
from nasjax.darts import search
from nasjax.final import train
from nasjax.search_spaces import darts_cell


def _space(search_config) -> darts_cell.DartsCellSpace:
  return darts_cell.DartsCellSpace(tuple(search_config.search_space.primitives),
                                   steps=search_config.search_space.steps)


def table(rows: list[dict]) -> str:
  """Markdown: one row per genotype, then the random genotypes' summary."""
  lines = ['| genotype | test accuracy | parameters |', '|---|---|---|']
  for r in rows:
    lines.append(f"| {r['name']} | {r['test_accuracy']:.4f} | "
                 f"{r['param_count']:,} |")
  rand = [r['test_accuracy'] for r in rows if r['name'].startswith('random')]
  if rand:
    lines.append('')
    lines.append(f'random ({len(rand)}): mean {np.mean(rand):.4f}, std '
                 f'{np.std(rand, ddof=1) if len(rand) > 1 else 0.0:.4f}, '
                 f'min {min(rand):.4f}, max {max(rand):.4f}')
  return '\n'.join(lines)


def run(config: ml_collections.ConfigDict, workdir: str,
        dataset: pipeline.Dataset) -> dict:
  """Search, sample, train all alike; returns the summary (see module doc)."""
  config_checks.check_search_vs_random_config(config)
  loop.prepare_workdir(workdir)
  logging.info('Search (%s).', config.search.search.arch_mode)
  searched = search.search(config.search, os.path.join(workdir, 'search'),
                           dataset)
  if searched['status'] != 'completed':
    return {'status': searched['status'], 'stage': 'search'}
  genotypes = {'searched': genotype_lib.from_dict(searched['genotype'])}
  rng = np.random.default_rng(config.random_seed)
  space = _space(config.search)
  for k in range(config.num_random):
    genotypes[f'random_{k}'] = genotype_lib.random_genotype(space, rng)

  rows = []
  for name, g in genotypes.items():
    logging.info('Training %s: %s', name, genotype_lib.to_notation(g))
    out = train.train(config.train, os.path.join(workdir, f'train_{name}'),
                      dataset, g)
    if out['status'] != 'completed':
      return {'status': out['status'], 'stage': f'train_{name}'}
    rows.append({'name': name, 'test_accuracy': out['test_accuracy'],
                 'param_count': out['param_count'],
                 'genotype': genotype_lib.to_dict(g),
                 'train_seconds_this_run': out['wall_seconds']})

  searched_acc = rows[0]['test_accuracy']
  rand = np.array([r['test_accuracy'] for r in rows[1:]])
  summary = {
      'status': 'completed',
      'rows': rows,
      'searched_test_accuracy': searched_acc,
      'random_mean': float(rand.mean()),
      'random_std': float(rand.std(ddof=1)) if len(rand) > 1 else 0.0,
      'random_best': float(rand.max()),
      # 1 = the searched genotype is the best of all trained genotypes.
      'searched_rank': int(1 + np.sum(rand > searched_acc)),
      # Wall time of this invocation (a resumed stage counts only its rest).
      'search_seconds_this_run': searched['wall_seconds'],
      'dataset': dataset.name,
      'config': config.to_dict(),
  }
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  text = table(rows)
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(text + '\n')
  return summary
