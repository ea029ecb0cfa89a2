"""The Python API: search, derive and retrain from a notebook or a script.

  import nasjax
  ds = nasjax.data.load('digits')                 # or data.from_arrays(...)
  found = nasjax.search(ds, 'digits')             # a preset name or a config
  gdas = nasjax.search(ds, 'digits', space='nb201', strategy='gdas')
  nasjax.plot.alpha_history(found.history)
  trained = nasjax.retrain(ds, found.genotype, 'digits')
  trained.test_accuracy

  cell = nasjax.rnn_search('synthetic')           # recurrent cell (PTB: a dir)
  lm = nasjax.retrain_lm(cell.genotype, 'synthetic')
  lm.test_perplexity

The calls set the process up with the platform defaults first
(`nasjax.setup`, unless it was called already), take the image shape from
the dataset, and return objects (`SearchResult`, `TrainResult`). With
`workdir=` they checkpoint and resume exactly, like the binaries.
"""

from typing import Callable

import ml_collections

from nasjax import configs
from nasjax import data as data_lib
from nasjax import errors
from nasjax import genotype as genotype_lib
from nasjax import one_shot as one_shot_lib
from nasjax import platform
from nasjax.darts import rnn_search as rnn_search_lib
from nasjax.darts import search as search_lib
from nasjax.data import ptb
from nasjax.enas import lm_search as enas_lm_search_lib
from nasjax.enas import search as enas_search_lib
from nasjax.final import lm_train as lm_train_lib
from nasjax.final import selection as selection_lib
from nasjax.final import train as train_lib
from nasjax.search_spaces import enas as enas_space
from nasjax.search_spaces.nb201 import encoding as nb201_encoding

Config = ml_collections.ConfigDict | str | None


def _config(config: Config, preset: Callable, dataset=None,
            stages=lambda c: (c,)) -> ml_collections.ConfigDict:
  """A copy of `config` (or of the preset it names), every one of its
  `stages` (the run configs inside it) fitted to `dataset` (an image
  dataset; None: as is)."""
  if config is None or isinstance(config, str):
    config = preset(*([config] if config else []))
  elif isinstance(config, ml_collections.ConfigDict):
    config = ml_collections.ConfigDict(config.to_dict())  # Unlocked copy.
  else:
    raise TypeError(f'config must be a preset name or a ConfigDict, got '
                    f'{type(config).__name__}.')
  for stage in stages(config) if dataset is not None else ():
    stage.data.name = dataset.name
    stage.data.image_shape = tuple(dataset.image_shape)
  return config


def _dataset(dataset) -> data_lib.Dataset:
  if isinstance(dataset, str):
    return data_lib.load(dataset)
  if not isinstance(dataset, data_lib.Dataset):
    raise TypeError('dataset must be a nasjax.data.Dataset (data.load, '
                    'data.from_arrays) or a name, got '
                    f'{type(dataset).__name__}.')
  return dataset


# The (space, strategy) pairs `search` runs, and how.
PAIRS = {
    ('darts_cell', 'darts'): 'the DARTS cell search (nasjax.darts.search); '
                             'the preset sets the order',
    ('enas_micro', 'enas'): 'ENAS (nasjax.enas.search), micro or macro by '
                            'the preset',
    ('nb201', 'darts'): 'DARTS, first order', ('nb201', 'darts2'):
        'DARTS, exact second order', ('nb201', 'gdas'): 'GDAS',
    ('nb201', 'rsps'): 'random-sampling one-shot (RSPS)',
    ('nb201', 'enas'): "ENAS's controller + REINFORCE",
    ('darts_cell', 'gdas'): 'GDAS on the DARTS cell (the one-shot loop)',
    ('darts_cell', 'rsps'): 'random-sampling one-shot on the DARTS cell',
    ('darts_cell', 'enas'): "ENAS's micro controller over the DARTS cell",
    ('enas_micro', 'darts'): "the DARTS search on ENAS's micro space (its "
                             'ops and 5 nodes; darts_search enas_micro)',
}


def search(dataset, config: Config = None, *, space: str | None = None,
           strategy: str | None = None, workdir: str | None = None,
           callback=None, progress: str = 'auto'):
  """A search of `space` by `strategy` on `dataset`.

  Args:
    dataset: a `nasjax.data.Dataset` (or 'digits'); its training split is
      divided into the weights' and the architecture's data.
    config: a preset name or a ConfigDict (not modified). Without `space`:
      a `nasjax.configs.search` preset ('cifar10', the DARTS paper's;
      'cifar10_subset', 'digits', 'tiny'; None: 'cifar10'), or a one-shot
      preset naming its pair ('nb201_gdas_digits', `configs.one_shot`).
      With `space` and `strategy`: that pair's preset of this size ('',
      'digits', 'subset', 'tiny' for NB201; the DARTS and ENAS preset names
      otherwise).
    space, strategy: a pair of `PAIRS`: ('darts_cell', 'darts' | 'gdas' |
      'rsps' | 'enas'), ('enas_micro', 'enas' | 'darts'), ('nb201',
      'darts' | 'darts2' | 'gdas' | 'rsps' | 'enas').
    workdir: checkpoints, TensorBoard, history, results; re-running with it
      resumes. None: nothing is written.
    callback: `callback(history)` after every epoch (e.g. a live plot).
    progress: 'auto' (a bar in notebooks and terminals), 'bar', 'lines',
      'none'.

  Returns:
    DARTS (on the DARTS cell or ENAS's micro space): a `SearchResult`
    (`.genotype`, `.history`, `.alpha`). ENAS: an `EnasSearchResult`
    (`.arc`, `.arc_string`). NB201 and the DARTS cell by GDAS, RSPS or
    ENAS: a `nasjax.one_shot.OneShotResult` (`.cell`, `.cell_string`,
    `.summary` with the table lookup when `config.table` names one).
  """
  platform.ensure_setup()
  dataset = _dataset(dataset)
  kwargs = dict(callback=callback, progress=progress)
  if (space is None) != (strategy is None):
    raise errors.UserError('Give both space= and strategy=, or neither.')
  if space is not None and (space, strategy) not in PAIRS:
    raise errors.UserError(
        f'No search of space {space!r} by strategy {strategy!r}; the pairs '
        f'are {sorted(PAIRS)}.')
  if (space, strategy) == ('darts_cell', 'darts'):
    space = None  # The DARTS search, as without a pair.
  if (space, strategy) == ('enas_micro', 'darts'):
    if config is None or isinstance(config, str):
      config = 'enas_micro' + (f'_{config}' if config else '')
    return search_lib.search(_config(config, configs.search, dataset),
                             workdir, dataset, **kwargs)
  if space == 'enas_micro':
    return enas_search_lib.search(_config(config, configs.enas, dataset),
                                  workdir, dataset, **kwargs)
  if space is not None:
    if config is None or isinstance(config, str):
      config = f'{space}_{strategy}' + (f'_{config}' if config else '')
    return one_shot_lib.search(_config(config, configs.one_shot, dataset),
                               workdir, dataset, **kwargs)
  if (isinstance(config, str) and config in configs.one_shot_search.VARIANTS
      or isinstance(config, ml_collections.ConfigDict) and 'space' in config):
    return one_shot_lib.search(_config(config, configs.one_shot, dataset),
                               workdir, dataset, **kwargs)
  return search_lib.search(_config(config, configs.search, dataset), workdir,
                           dataset, **kwargs)


def enas_search(dataset, config: Config = None, *,
                workdir: str | None = None, callback=None,
                progress: str = 'auto') -> enas_search_lib.EnasSearchResult:
  """An ENAS search on `dataset` (`nasjax.enas.search`).

  Args:
    dataset: a `nasjax.data.Dataset` (or 'digits'); the last
      `data.num_valid` training images are held out for the controller.
    config: a `nasjax.configs.enas` preset name ('micro', the reference's
      cell search; 'macro', 'digits', 'digits_long', 'micro_tiny',
      'macro_tiny') or a ConfigDict; None: 'micro'. Not modified.
    workdir, callback, progress: as for `search`.

  Returns:
    An `EnasSearchResult`: `.arc` and `.arc_string` (the derived
    architecture), `.accuracy`, `.candidates`, `.history` (per epoch: child
    and controller means, `.arcs` the best sampled), `.state`, `.summary`.
  """
  platform.ensure_setup()
  dataset = _dataset(dataset)
  return enas_search_lib.search(_config(config, configs.enas, dataset),
                                workdir, dataset, callback=callback,
                                progress=progress)


def retrain(dataset, genotype, config: Config = None, *,
            workdir: str | None = None, callback=None,
            progress: str = 'auto') -> train_lib.TrainResult:
  """Trains a genotype from scratch and tests it.

  Args:
    dataset: a `nasjax.data.Dataset` (or 'digits').
    genotype: a `Genotype` (e.g. `search(...).genotype`) or an `EnasArc`
      (`enas_search(...).genotype`), a published name ('DARTS_V2', 'NASNet',
      'ENAS_MICRO', ...), a genotype or arc file, or the papers' notation;
      or a NAS-Bench-201 cell (`search(..., space='nb201', ...).cell`, its
      string or a search's cell.txt).
    config: a `nasjax.configs.retrain` preset name ('cifar10', the paper's
      600 epochs; 'imagenet', 'cifar10_subset', 'digits', 'tiny'; for ENAS
      arcs 'enas_micro', 'enas_macro', 'enas_digits', 'enas_tiny'; for
      NB201 cells 'nb201' (200 epochs), 'nb201_12', 'nb201_digits',
      'nb201_tiny') or a
      ConfigDict; None: 'cifar10' ('enas_micro' or 'enas_macro' for an ENAS
      arc, 'nb201' for an NB201 cell). Not modified.
    workdir, callback, progress: as for `search`.

  Returns:
    A `TrainResult`: `.test_accuracy`, `.param_count`, `.history`, `.state`.
  """
  platform.ensure_setup()
  dataset = _dataset(dataset)
  if isinstance(genotype, (tuple, list)) and not isinstance(
      genotype, genotype_lib.Genotype):  # A NAS-Bench-201 cell's indices.
    genotype = nb201_encoding.Nb201Cell(nb201_encoding.check(genotype))
  if not isinstance(genotype, (genotype_lib.Genotype, enas_space.EnasArc,
                               nb201_encoding.Nb201Cell)):
    genotype = genotype_lib.load(str(genotype))
  if config is None and isinstance(genotype, enas_space.EnasArc):
    config = f'enas_{genotype.kind}'
  if config is None and isinstance(genotype, nb201_encoding.Nb201Cell):
    config = 'nb201'
  return train_lib.train(_config(config, configs.retrain, dataset), workdir,
                         dataset, genotype, callback=callback,
                         progress=progress)


def select(dataset, config: Config = None, *, workdir: str | None = None,
           progress: str = 'auto') -> selection_lib.SelectionResult:
  """K searches (+ M random genotypes), each candidate trained and compared,
  the best optionally trained in full (`nasjax.final.selection`).

  Args:
    dataset: a `nasjax.data.Dataset` (or 'digits').
    config: a `nasjax.configs.selection` preset name ('darts_cifar10', the
      paper's protocol; 'svr_cifar10_subset', ...; ENAS search vs random:
      'svr_enas_micro', 'svr_enas_digits'; recurrent cells: 'darts_ptb',
      'svr_ptb', 'svr_rnn_small', 'svr_enas_ptb', 'svr_enas_rnn_small',
      with `dataset` a `data.ptb.Corpus`, a PTB directory or 'synthetic') or a ConfigDict; None: 'darts_cifar10'.
      Not modified.
    workdir, progress: as for `search`; every stage resumes in its own
      subdirectory.

  Returns:
    A `SelectionResult`: `.rows`, `.chosen`, `.final`, `.table`.
  """
  platform.ensure_setup()
  method = (config.get('method') if isinstance(
      config, ml_collections.ConfigDict) else
            configs.selection.get_config(config).method
            if config in configs.selection.VARIANTS else None)
  if isinstance(dataset, ptb.Corpus) or method in ('darts_rnn', 'enas_rnn'):
    # Recurrent cells: `dataset` is a corpus, a PTB directory or 'synthetic'.
    config = _config(config, configs.selection.get_config)
    corpus = _corpus(dataset, config.search)
    config.data_name = config.search.data.name
    config.data_dir = config.search.data.data_dir
    return selection_lib.run(config, workdir, corpus, progress=progress)
  dataset = _dataset(dataset)
  config = _config(config or 'darts_cifar10', configs.selection.get_config,
                   dataset, lambda c: (c.search, c.candidate_train,
                                       c.final_train))
  return selection_lib.run(config, workdir, dataset, progress=progress)


def _corpus(corpus, config) -> ptb.Corpus:
  """A `ptb.Corpus`, a PTB directory, 'synthetic', or None (the config's)."""
  if corpus is None:
    return rnn_search_lib.load_corpus(config)
  if isinstance(corpus, ptb.Corpus):
    return corpus
  if corpus == 'synthetic':
    config.data.name = 'synthetic'
    return rnn_search_lib.load_corpus(config)
  if isinstance(corpus, str):
    config.data.name, config.data.data_dir = 'ptb', corpus
    return ptb.load(corpus)
  raise TypeError('corpus must be a nasjax.data.ptb.Corpus, a PTB directory, '
                  f"'synthetic' or None, got {type(corpus).__name__}.")


def rnn_search(config: Config = None, corpus=None, *,
               workdir: str | None = None, callback=None,
               progress: str = 'auto') -> rnn_search_lib.RnnSearchResult:
  """A DARTS recurrent cell search (`nasjax.darts.rnn_search`).

  Args:
    config: a `nasjax.configs.rnn_search` preset ('ptb', the paper's;
      'synthetic', 'tiny') or a ConfigDict; None: 'ptb'. Not modified.
    corpus: a `nasjax.data.ptb.Corpus`, the directory of the PTB files,
      'synthetic', or None (what the config names).
    workdir, callback, progress: as for `search`.

  Returns:
    An `RnnSearchResult`: `.genotype`, `.history` (per epoch: softmax(alpha)
    per edge, losses, validation perplexity), `.state`, `.summary`.
  """
  platform.ensure_setup()
  config = _config(config, configs.rnn_search)
  corpus = _corpus(corpus, config)
  return rnn_search_lib.search(config, workdir, corpus, callback=callback,
                               progress=progress)


def enas_rnn_search(config: Config = None, corpus=None, *,
                    workdir: str | None = None, callback=None,
                    progress: str = 'auto'
                    ) -> enas_search_lib.EnasSearchResult:
  """An ENAS recurrent cell search (`nasjax.enas.lm_search`).

  Args:
    config: a `nasjax.configs.enas_rnn` preset ('ptb', the corrected
      reference's; 'synthetic', 'tiny') or a ConfigDict; None: 'ptb'. Not
      modified.
    corpus, workdir, callback, progress: as for `rnn_search`.

  Returns:
    An `EnasSearchResult`: `.genotype` (the derived cell as an `EnasArc`;
    `.genotype.space.to_genotype(.arc)` is its `RecurrentGenotype`),
    `.perplexity`, `.candidates`, `.history`, `.state`, `.summary`.
  """
  platform.ensure_setup()
  config = _config(config, configs.enas_rnn)
  corpus = _corpus(corpus, config)
  return enas_lm_search_lib.search(config, workdir, corpus,
                                   callback=callback, progress=progress)


def retrain_lm(genotype, config: Config = None, corpus=None, *,
               workdir: str | None = None, callback=None,
               progress: str = 'auto') -> lm_train_lib.LMTrainResult:
  """Trains a recurrent cell in the language model from scratch
  (`nasjax.final.lm_train`: SGD, then averaged SGD).

  Args:
    genotype: a `RecurrentGenotype` (`rnn_search(...).genotype`), a
      recurrent ENAS arc (`enas_search(...).genotype`), a published name
      ('DARTS_V2_RNN', 'DARTS_V1_RNN', 'ENAS_RNN', 'ENAS_RNN_LM'), a
      genotype or arc file, or its notation.
    config: a `nasjax.configs.language_model` preset ('ptb', the
      reference's; 'synthetic', 'tiny') or a ConfigDict; None: 'ptb'.
    corpus, workdir, callback, progress: as for `rnn_search`.

  Returns:
    An `LMTrainResult`: `.valid_perplexity`, `.test_perplexity`,
    `.param_count`, `.history`, `.state`, `.summary`.
  """
  platform.ensure_setup()
  config = _config(config, configs.language_model)
  if not isinstance(genotype, (genotype_lib.RecurrentGenotype,
                               enas_space.EnasArc)):
    genotype = genotype_lib.load(str(genotype))
  genotype = lm_train_lib.recurrent_cell(genotype)
  config.genotype = str(genotype)  # What results.json records.
  corpus = _corpus(corpus, config)
  return lm_train_lib.train(config, workdir, corpus, genotype,
                            callback=callback, progress=progress)
