"""Search-vs-random configs: a DARTS search, K random genotypes, all retrained alike.

  python experiments/search_vs_random.py \
      --config=experiments/configs/search_vs_random.py:ARG --workdir=/tmp/svr

ARG picks the variant:
  cifar10_subset (default)  the CIFAR-10 subset in shared/data (5,085 train /
                     1,017 test images): first-order search C=8, 5 cells, 2
                     epochs; 4 random genotypes; each trained 5 epochs at
                     C=8, 5 cells, batch 32. Under an hour on a 2-core CPU
                     (README, Results).
  cifar10            the papers' protocol on full CIFAR-10 (search
                     darts_search.py:cifar10, training darts_train.py:cifar10,
                     8 random genotypes): for accelerators; set
                     search.data.data_dir and train.data.data_dir.
  tiny               tests: tiny first-order search, 2 random genotypes, 2
                     steps each.
Fields: `search` is a darts_search config, `train` a darts_train config
(override e.g. --config.train.epochs=10).
"""

import ml_collections

from experiments.configs import darts_search
from experiments.configs import darts_train


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'cifar10_subset'
  variants = {'cifar10_subset': ('cifar10_subset', 'cifar10_subset', 4),
              'cifar10': ('cifar10', 'cifar10', 8),
              'tiny': ('tiny', 'tiny', 2)}
  if arg not in variants:
    raise ValueError(f'Unknown config variant {arg!r}; valid: '
                     f'{sorted(variants)}.')
  search_arg, train_arg, num_random = variants[arg]
  c = ml_collections.ConfigDict()
  # The DARTS search (its data section also names the dataset for training).
  c.search = darts_search.get_config(search_arg)
  # How every genotype is trained: the same config and seed for all.
  c.train = darts_train.get_config(train_arg)
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
  return c
