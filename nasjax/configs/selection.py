"""Selection configs: the DARTS paper's protocol, and search vs random.

  python experiments/selection.py \
      --config=experiments/configs/selection.py:ARG --workdir=/tmp/sel \
      --config.data_dir=/path/to/cifar-10-batches-py

One runner (`nasjax.final.selection`): K searches with different seeds and M
random genotypes give the candidates; each candidate is trained alike and
compared; optionally the best is trained in full and tested.

ARG picks the variant:
  darts_cifar10      the DARTS paper's protocol: 4 searches (seeds 2-5, the
                     paper's search each), each derived cell trained for 100
                     epochs (the paper's network and training, shortened) on
                     90 % of the training split and compared on the held-out
                     10 %; the best trained for 600 epochs and tested.
                     Accelerators.
  darts_cifar10_subset  the same on a CIFAR-10 subset of ~5,000 training
                     images, small: 2 first-order searches of 1 epoch, 2
                     epochs per candidate, 5 for the final (CPU, minutes).
  svr_cifar10_subset search vs random (default): one first-order search (C=8,
                     5 cells, 2 epochs) and 4 random genotypes, each trained
                     5 epochs (C=8, 5 cells) and tested; no final training.
  svr_cifar10        search vs random at the papers' scale, 8 random
                     genotypes (accelerators).
  darts_tiny, svr_tiny  tests.
ENAS (method 'enas': ENAS searches against uniformly random arcs of the
same space, all trained in ENAS's final network):
  svr_enas_micro     the reference's micro search against 8 random arcs,
                     each trained as `darts_train.py:enas_micro`
                     (accelerators).
  svr_enas_digits    the digits ENAS search against 4 random arcs, each
                     trained as `enas_digits` (CPU, minutes).
  svr_enas_tiny      tests.
Recurrent cells (method 'darts_rnn': DARTS recurrent searches against random
recurrent cells, all trained in the language model and compared by
validation perplexity; `data_dir` is the PTB directory):
  darts_ptb          the DARTS paper's protocol: 4 searches, each derived
                     cell trained for 300 epochs, the best trained in full
                     (accelerators).
  svr_ptb            the paper's search against 8 random cells, each
                     trained for 300 epochs (accelerators).
  svr_rnn_small      a small search (the synthetic preset's sizes) against 4
                     random cells, each trained as `lm_train.py:synthetic`;
                     on the generated corpus, or on PTB files with
                     --config.data_name=ptb --config.data_dir=... (CPU,
                     minutes).
  svr_rnn_tiny       tests.
  svr_enas_ptb, svr_enas_rnn_small, svr_enas_rnn_tiny   the same with the
                     ENAS recurrent search (method 'enas_rnn';
                     `enas_rnn_search.py`) against uniformly random arcs of
                     its space.
Fields: `method` ('darts', 'enas', 'darts_rnn' or 'enas_rnn'), `data_dir`
(all stages), `search` a darts_search (enas_search, darts_rnn_search,
enas_rnn_search) config (search k
uses seed search.seed + k), `candidate_train` and `final_train` darts_train
(lm_train) configs, `num_searches`, `num_random`, `random_seed`,
`validation_fraction` (0: candidates are compared on the test split, as a
search-vs-random report; > 0: on that fraction of the training split, held
out from their training: a selection that never sees the test split),
`final` (train the best candidate with `final_train`).
"""

import ml_collections

from nasjax import errors
from nasjax.configs import darts_rnn_search
from nasjax.configs import darts_search
from nasjax.configs import darts_train
from nasjax.configs import enas_rnn_search
from nasjax.configs import enas_search
from nasjax.configs import lm_train


# variant -> (search, candidate_train, final_train variants, K, M,
#             validation_fraction, final).
_VARIANTS = {
    'darts_cifar10': ('cifar10', 'cifar10', 'cifar10', 4, 0, 0.1, True),
    'darts_cifar10_subset': ('cifar10_subset', 'cifar10_subset',
                             'cifar10_subset', 2, 0, 0.1, True),
    'svr_cifar10_subset': ('cifar10_subset', 'cifar10_subset',
                           'cifar10_subset', 1, 4, 0.0, False),
    'svr_cifar10': ('cifar10', 'cifar10', 'cifar10', 1, 8, 0.0, False),
    'darts_tiny': ('tiny', 'tiny', 'tiny', 2, 0, 0.25, True),
    'svr_tiny': ('tiny', 'tiny', 'tiny', 1, 2, 0.0, False),
}
# ENAS: variant -> (enas_search, candidate_train, final_train variants, K,
#                   M, validation_fraction, final).
_ENAS_VARIANTS = {
    'svr_enas_micro': ('micro', 'enas_micro', 'enas_micro', 1, 8, 0.0, False),
    'svr_enas_digits': ('digits', 'enas_digits', 'enas_digits', 1, 4, 0.0,
                        False),
    'svr_enas_tiny': ('micro_tiny', 'enas_tiny', 'enas_tiny', 1, 1, 0.0,
                      False),
}
# Recurrent: variant -> (method, darts_rnn_search or enas_rnn_search,
#                        candidate, final lm_train variants, K, M, final).
_RNN_VARIANTS = {
    'darts_ptb': ('darts_rnn', 'ptb', 'ptb', 'ptb', 4, 0, True),
    'svr_ptb': ('darts_rnn', 'ptb', 'ptb', 'ptb', 1, 8, False),
    'svr_rnn_small': ('darts_rnn', 'synthetic', 'synthetic', 'synthetic', 1,
                      4, False),
    'svr_rnn_tiny': ('darts_rnn', 'tiny', 'tiny', 'tiny', 1, 1, False),
    'svr_enas_ptb': ('enas_rnn', 'ptb', 'ptb', 'ptb', 1, 8, False),
    'svr_enas_rnn_small': ('enas_rnn', 'synthetic', 'synthetic', 'synthetic',
                           1, 4, False),
    'svr_enas_rnn_tiny': ('enas_rnn', 'tiny', 'tiny', 'tiny', 1, 1, False),
}
VARIANTS = tuple(_VARIANTS) + tuple(_ENAS_VARIANTS) + tuple(_RNN_VARIANTS)


def _recurrent(arg: str) -> ml_collections.ConfigDict:
  method, s, ct, ft, k, m, final = _RNN_VARIANTS[arg]
  c = ml_collections.ConfigDict()
  c.method = method
  c.search = (darts_rnn_search if method == 'darts_rnn' else
              enas_rnn_search).get_config(s)
  c.candidate_train = lm_train.get_config(ct)
  c.final_train = lm_train.get_config(ft)
  # The corpus of every stage: data_name 'ptb' (with data_dir) or
  # 'synthetic' (linked to each stage's data.name and data.data_dir).
  data_name = ml_collections.FieldReference(c.search.data.name)
  data_dir = ml_collections.FieldReference(c.search.data.data_dir)
  c.data_name, c.data_dir = data_name, data_dir
  for stage in (c.search, c.candidate_train, c.final_train):
    stage.data.name, stage.data.data_dir = data_name, data_dir
    stage.data.synthetic_tokens = c.search.data.synthetic_tokens
    stage.data.synthetic_vocab = c.search.data.synthetic_vocab
  c.num_searches, c.num_random, c.random_seed = k, m, 0
  # Candidates are compared on the corpus's validation split (never the
  # test split); kept for the shared checks.
  c.validation_fraction = 0.0
  c.final = final
  if arg in ('darts_ptb', 'svr_ptb', 'svr_enas_ptb'):
    c.candidate_train.epochs = 300  # The paper's short training.
  elif arg == 'svr_rnn_tiny':
    c.search.search.arch_mode = 'first_order'
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'svr_cifar10_subset'
  if arg not in VARIANTS:
    raise errors.ConfigError(
        f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  if arg in _RNN_VARIANTS:
    return _recurrent(arg)
  enas = arg in _ENAS_VARIANTS
  s, ct, ft, k, m, fraction, final = (_ENAS_VARIANTS if enas else
                                      _VARIANTS)[arg]
  c = ml_collections.ConfigDict()
  # 'darts' or 'enas': which search, and which random architectures.
  c.method = 'enas' if enas else 'darts'
  # The search (DARTS or ENAS); search k runs with seed search.seed + k.
  c.search = (enas_search if enas else darts_search).get_config(s)
  # How every candidate is trained before they are compared: one config and
  # seed for all.
  c.candidate_train = darts_train.get_config(ct)
  # How the best candidate is trained in the end (if `final`).
  c.final_train = darts_train.get_config(ft)
  # The data directory of every stage (one field, linked to each stage's
  # data.data_dir).
  data_dir = ml_collections.FieldReference(c.search.data.data_dir)
  c.data_dir = data_dir
  for stage in (c.search, c.candidate_train, c.final_train):
    stage.data.data_dir = data_dir
  # Searches with different seeds (K) and random genotypes (M).
  c.num_searches = k
  c.num_random = m
  # Seed of the random genotypes.
  c.random_seed = 0
  # 0: compare candidates on the test split; > 0: on this fraction of the
  # training split, which their training then does not use.
  c.validation_fraction = fraction
  # Train the best candidate with final_train and test it.
  c.final = final

  if arg == 'darts_cifar10':
    c.candidate_train.epochs = 100  # The paper's "short period".
  elif arg == 'darts_cifar10_subset':
    c.search.epochs = 1
    c.final_train.epochs = 5
  elif arg == 'svr_cifar10_subset':
    c.search.epochs = 2
    c.candidate_train.epochs = 5
  elif arg == 'svr_enas_tiny':
    for t in (c.candidate_train, c.final_train):
      t.max_steps, t.batch_size = 60, 16
      # One checkpoint, at the end: the tiny trainings checkpoint every step.
      t.checkpoint_every_steps, t.log_every_steps = 60, 20
  elif arg in ('darts_tiny', 'svr_tiny'):
    # The pipeline is under test, not the hypergradient: first order, the
    # step tests/search_test.py compiles too (the XLA cache serves both).
    c.search.search.arch_mode = 'first_order'
    # Enough training (60 steps of 16, lr 0.1: seconds) that every genotype
    # is clearly above chance on the digits, so the test can see training.
    for t in (c.candidate_train, c.final_train):
      t.max_steps, t.batch_size = 60, 16
      t.optimizer.learning_rate = 0.1
      t.checkpoint_every_steps, t.log_every_steps = 60, 20
  return c
