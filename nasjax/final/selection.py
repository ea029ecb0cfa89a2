"""Choosing a cell: K searches and M random genotypes, compared by training.

One runner serves two protocols (`nasjax.configs.selection`), for DARTS
(`method='darts'`: DARTS searches, random cells of the DARTS space), for
ENAS (`method='enas'`: ENAS searches, uniformly random arcs of the same ENAS
space, trained in ENAS's final networks) and for recurrent cells
(`method='darts_rnn'` or `'enas_rnn'`: recurrent searches, random cells of
the same space, trained in the language model and compared by validation
perplexity, lower is better):

* the DARTS paper's: search K times with different seeds, train each derived
  cell for a short while, keep the best on held-out data, train it in full
  and test it (`darts_*` presets);
* search vs random: one search against M genotypes drawn uniformly from the
  same space, all trained alike and tested (`svr_*` presets). Random search
  is a strong NAS baseline (Li & Talwalkar, 2019; Yu et al., 2020), so a
  search result means little until it beats it.

`run(config, workdir, dataset)`:

1. runs search k (k < `num_searches`) with seed `search.seed + k`, in
   `workdir/search_k`, and derives its genotype ('searched_k');
2. samples `num_random` genotypes ('random_i'; DARTS:
   `genotype.random_genotype`, per node two distinct inputs, ops uniform
   over all but 'none'; ENAS: `space.random_arc`, every token uniform);
3. trains every candidate with `candidate_train` (one config and seed for
   all) in `workdir/candidate_<name>`: with `validation_fraction` f > 0 on
   the first 1 - f of the training split and compared on the last f (the
   test split is never seen); with f = 0 on the whole training split and
   compared on the test split (a report, not a selection);
4. if `final`, trains the best candidate with `final_train` on the whole
   training split in `workdir/final_<name>` and tests it;
5. writes `results.json` and `results.md` (every candidate, the random
   genotypes' mean, spread and best, each search's rank, the final result).

Every stage resumes from its own workdir; an interrupted stage (SIGTERM)
returns a `SelectionResult` with status 'interrupted' and the stage's name,
and writes no results. Without a workdir nothing is written.

  result = run(config, '/tmp/sel', data.load('cifar10', path))
  result.chosen, result.final.test_accuracy, print(result.table)
"""

import dataclasses
import json
import os
from typing import Callable

import ml_collections
import numpy as np

from nasjax import config_checks
from nasjax import genotype as genotype_lib
from nasjax import loop
from nasjax import progress as progress_lib
from nasjax.darts import rnn_search
from nasjax.darts import search
from nasjax.data import pipeline
from nasjax.enas import search as enas_search
from nasjax.final import lm_train
from nasjax.final import train
from nasjax.genotype import recurrent
from nasjax.search_spaces import enas as enas_space


@dataclasses.dataclass
class SelectionResult:
  """What a selection returns.

  Attributes:
    status: 'completed' or 'interrupted'.
    stage: the stage that was interrupted, else None.
    rows: per candidate: name, search seed (None for random), genotype (as
      a dict), accuracy on the comparison split, parameter count.
    metric: what `rows` compare: 'validation_accuracy' or 'test_accuracy'.
    chosen: the name of the best candidate (None if interrupted).
    searches: the `SearchResult` of every search.
    final: the final `TrainResult` of the chosen candidate, if trained.
    summary: all of it as JSON (results.json).
    table: the Markdown table (results.md).
  """
  status: str
  stage: str | None = None
  rows: list[dict] = dataclasses.field(default_factory=list)
  metric: str = ''
  chosen: str | None = None
  searches: list = dataclasses.field(default_factory=list)
  final: train.TrainResult | None = None
  summary: dict = dataclasses.field(default_factory=dict)
  table: str = ''


def holdout(dataset: pipeline.Dataset, fraction: float) -> pipeline.Dataset:
  """The training split cut in two: the first 1 - fraction to train on,
  the rest in the place of the test split (normalisation unchanged)."""
  n = len(dataset.train)
  cut = n - int(round(n * fraction))
  if not 0 < cut < n:
    raise pipeline.DataError(f'validation_fraction={fraction} leaves an '
                             f'empty part of {n} training examples.')
  tr = dataset.train
  return pipeline.Dataset(
      f'{dataset.name}[:{cut}]', pipeline.Split(tr.images[:cut],
                                                tr.labels[:cut]),
      pipeline.Split(tr.images[cut:], tr.labels[cut:]),
      dataset.num_classes, dataset.mean, dataset.std)


def _stats(values) -> dict:
  v = np.asarray(values, np.float64)
  return {'mean': float(v.mean()),
          'std': float(v.std(ddof=1)) if len(v) > 1 else 0.0,
          'min': float(v.min()), 'max': float(v.max())}


def table(rows: list[dict], metric: str, final: dict | None = None) -> str:
  """Markdown: one row per candidate, the random genotypes' summary, the
  final training."""
  lines = [f'| candidate | search seed | {metric.replace("_", " ")} | '
           'parameters |', '|---|---|---|---|']
  for r in rows:
    seed = '' if r['seed'] is None else r['seed']
    lines.append(f"| {r['name']} | {seed} | {r[metric]:.4f} | "
                 f"{r['param_count']:,} |")
  rand = [r[metric] for r in rows if r['seed'] is None]
  if rand:
    s = _stats(rand)
    lines += ['', f"random ({len(rand)}): mean {s['mean']:.4f}, std "
              f"{s['std']:.4f}, min {s['min']:.4f}, max {s['max']:.4f}"]
  if final:
    what = ('perplexity' if 'test_perplexity' in final else 'accuracy')
    lines += ['', f"final: {final['name']} trained with final_train: test "
              f"{what} {final['test_' + what]:.4f}, "
              f"{final['param_count']:,} parameters"]
  return '\n'.join(lines)


def _sub(workdir, name):
  return None if workdir is None else os.path.join(workdir, name)


@dataclasses.dataclass(frozen=True)
class _Method:
  """What differs between the methods: the search, the random
  architectures of its space, how a candidate is trained and compared."""
  search: Callable        # (config, workdir, data, progress=) -> result
  describe: Callable      # search config -> words for the progress line
  random: Callable        # (space, rng) -> an architecture
  train: Callable         # (config, workdir, data, arch, progress=)
  row: Callable           # (train result, metric) -> the row's figures
  lower_is_better: bool = False


def _image_row(out, metric):
  return {metric: out.test_accuracy}


def _lm_row(out, metric):
  return {metric: out.valid_perplexity, 'test_perplexity': out.test_perplexity}


def _methods():
  from nasjax.enas import lm_search  # pylint: disable=g-import-not-at-top
  enas_arc = lambda space, rng: enas_space.EnasArc(space,
                                                   space.random_arc(rng))
  return {
      'darts': _Method(search.search, lambda c: c.search.arch_mode,
                       lambda space, rng: genotype_lib.random_genotype(
                           space, rng), train.train, _image_row),
      'enas': _Method(enas_search.search, lambda c: f'ENAS {c.space}',
                      enas_arc, train.train, _image_row),
      'darts_rnn': _Method(
          rnn_search.search, lambda c: f'recurrent, {c.search.arch_mode}',
          lambda space, rng: recurrent.random_genotype(
              rng, space.steps, space.primitives[1:]),
          lm_train.train, _lm_row, lower_is_better=True),
      'enas_rnn': _Method(lm_search.search, lambda c: 'ENAS recurrent',
                          enas_arc, lm_train.train, _lm_row,
                          lower_is_better=True),
  }


@loop.releases_workdirs
def run(config: ml_collections.ConfigDict, workdir: str | None,
        data, *, progress: str = 'auto') -> SelectionResult:
  """Searches, samples, trains and compares (see the module docstring).

  `data`: a `pipeline.Dataset` (images), or a `data.ptb.Corpus` for the
  recurrent methods, whose candidates are compared by the validation
  perplexity of their language model (the test split is never used for the
  choice; its perplexity is reported)."""
  config_checks.check_selection_config(config)
  report = progress_lib.Progress(progress)
  if workdir is not None:
    loop.prepare_workdir(workdir)
  method = _methods()[config.method]
  if method.lower_is_better:
    metric, compare_on = 'validation_perplexity', data
    data_name = 'ptb' if data.directory else 'synthetic'
  else:
    fraction = config.validation_fraction
    compare_on = holdout(data, fraction) if fraction > 0 else data
    metric = 'validation_accuracy' if fraction > 0 else 'test_accuracy'
    data_name = data.name

  candidates, searches = {}, []
  for k in range(config.num_searches):
    sc = ml_collections.ConfigDict(config.search.to_dict())
    sc.seed = config.search.seed + k
    report.message(f'Search {k + 1} of {config.num_searches} (seed '
                   f'{sc.seed}, {method.describe(sc)}).')
    found = method.search(sc, _sub(workdir, f'search_{k}'), data,
                          progress=progress)
    searches.append(found)
    if found.status != 'completed':
      return SelectionResult('interrupted', f'search_{k}', searches=searches)
    candidates[f'searched_{k}'] = (sc.seed, found.genotype)
  rng = np.random.default_rng(config.random_seed)
  space = searches[0].space  # num_searches >= 1 (config_checks).
  for i in range(config.num_random):
    candidates[f'random_{i}'] = (None, method.random(space, rng))

  rows = []
  for name, (seed, g) in candidates.items():
    report.message(f'Training candidate {name}: {genotype_lib.to_notation(g)}')
    out = method.train(config.candidate_train,
                       _sub(workdir, f'candidate_{name}'), compare_on, g,
                       progress=progress)
    if out.status != 'completed':
      return SelectionResult('interrupted', f'candidate_{name}', rows=rows,
                             metric=metric, searches=searches)
    rows.append({'name': name, 'seed': seed,
                 'genotype': genotype_lib.to_dict(g),
                 **method.row(out, metric), 'param_count': out.param_count,
                 'train_seconds_this_run': out.summary['wall_seconds']})

  pick = min if method.lower_is_better else max
  best = pick(rows, key=lambda r: r[metric])
  final, final_row = None, None
  if config.final:
    report.message(f"Final training of {best['name']}.")
    final = method.train(config.final_train,
                         _sub(workdir, f"final_{best['name']}"), data,
                         candidates[best['name']][1], progress=progress)
    if final.status != 'completed':
      return SelectionResult('interrupted', f"final_{best['name']}", rows=rows,
                             metric=metric, searches=searches, final=final)
    test = ('test_perplexity' if method.lower_is_better else 'test_accuracy')
    final_row = {'name': best['name'], test: getattr(final, test),
                 'param_count': final.param_count}
  return _finish(rows, metric, best, final, final_row, searches, data_name,
                 config, workdir, lower_is_better=method.lower_is_better)


def _finish(rows, metric, best, final, final_row, searches, data_name, config,
            workdir, *, lower_is_better: bool) -> SelectionResult:
  """results.json, results.md and the `SelectionResult`."""
  summary = {'status': 'completed', 'metric': metric, 'rows': rows,
             'chosen': best['name'], 'final': final_row,
             'dataset': data_name, 'config': config.to_dict()}
  rand = [r[metric] for r in rows if r['seed'] is None]
  if rand:
    summary['random'] = _stats(rand)
    # Rank 1 = better than every random genotype.
    better = (lambda a, b: a < b) if lower_is_better else (lambda a, b: a > b)
    summary['search_ranks_among_random'] = {
        r['name']: int(1 + sum(better(a, r[metric]) for a in rand))
        for r in rows if r['seed'] is not None}
  text = table(rows, metric, final_row)
  if workdir is not None:
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(summary, f, indent=1)
    with open(os.path.join(workdir, 'results.md'), 'w') as f:
      f.write(text + '\n')
  return SelectionResult('completed', None, rows, metric, best['name'],
                         searches, final, summary, text)
