"""Search-vs-random configs: a DARTS search, K random genotypes, all retrained alike.

  python experiments/search_vs_random.py \
      --config=experiments/configs/search_vs_random.py:ARG --workdir=/tmp/svr

ARG picks the variant:
  cifar10_subset (default)  a CIFAR-10 subset of about 5,000 training
                     images at --config.data_dir: first-order search C=8, 5
                     cells, 2 epochs; 4 random genotypes; each trained 5
                     epochs at C=8, 5 cells, batch 32. Under an hour on a
                     2-core CPU (README, Results).
  cifar10            the papers' protocol on full CIFAR-10 (search
                     darts_search.py:cifar10, training darts_train.py:cifar10,
                     8 random genotypes): for accelerators; set
                     --config.data_dir.
  tiny               tests: tiny first-order search (2 steps), 2 random
                     genotypes, 60 training steps each
Fields: `data_dir` (the data directory of both stages), `search` a
darts_search config, `train` a darts_train config (override e.g.
--config.train.epochs=10).
"""

import ml_collections

from experiments.configs import darts_search
from experiments.configs import darts_train


# variant -> (darts_search variant, darts_train variant, K).
_VARIANTS = {'cifar10_subset': ('cifar10_subset', 'cifar10_subset', 4),
             'cifar10': ('cifar10', 'cifar10', 8),
             'tiny': ('tiny', 'tiny', 2)}
VARIANTS = tuple(_VARIANTS)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'cifar10_subset'
  if arg not in _VARIANTS:
    raise ValueError(f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  search_arg, train_arg, num_random = _VARIANTS[arg]
  c = ml_collections.ConfigDict()
  # The DARTS search (its data section also names the dataset for training).
  c.search = darts_search.get_config(search_arg)
  # How every genotype is trained: the same config and seed for all.
  c.train = darts_train.get_config(train_arg)
  # The data directory of both stages (one field, linked to
  # search.data.data_dir and train.data.data_dir).
  data_dir = ml_collections.FieldReference(c.search.data.data_dir)
  c.data_dir = data_dir
  c.search.data.data_dir = data_dir
  c.train.data.data_dir = data_dir
  # Number of random genotypes (K).
  c.num_random = num_random
  # Seed of the random genotypes.
  c.random_seed = 0
  if arg == 'cifar10_subset':
    c.search.epochs = 2
    c.train.epochs = 5
  elif arg == 'tiny':
    # The pipeline is under test, not the hypergradient: first order, the
    # step tests/search_test.py compiles too (the XLA cache serves both).
    c.search.arch_mode = 'first_order'
    # Enough training (60 steps of 16, lr 0.1: seconds) that every genotype
    # is clearly above chance on the digits, so the test can see training.
    c.train.max_steps, c.train.batch_size = 60, 16
    c.train.optimizer.learning_rate = 0.1
  return c
