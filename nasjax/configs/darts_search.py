"""DARTS search configs: the paper's CIFAR-10 setting and small variants.

  python experiments/darts_search.py \
      --config=experiments/configs/darts_search.py:ARG --workdir=/tmp/darts

ARG picks the variant:
  cifar10 (default)  the paper's search (reference `cnn/train_search.py`):
                     C=16, 8 cells, batch 64, 50 epochs, exact second order.
                     Needs --config.data.data_dir (the extracted
                     cifar-10-batches-py directory).
                     The reference code needs ~13 days on a 2-core CPU for
                     this; run it on an accelerator.
  digits             the README's main command: the same search on the
                     8x8 UCI digits that ship with scikit-learn (no download),
                     C=8, 5 cells, 2 epochs.
  cifar10_subset     a small first-order search (C=8, 5 cells, 1 epoch) for a
                     CIFAR-10 subset of about 5,000 training images at
                     --config.data.data_dir (batch files in the
                     cifar-10-batches-py layout).
  tiny               tests: C=4, 3 cells, a 4-op space, 2 steps.
  enas_micro[_SIZE]  DARTS on ENAS's micro space: ENAS's ops (sep_conv_3x3,
                     sep_conv_5x5, avg_pool_3x3, max_pool_3x3, identity as
                     skip_connect; and none) and 5 nodes, each node's two
                     inputs and ops relaxed as DARTS relaxes its cell; SIZE
                     as above (tiny: 2 nodes). The genotype retrains in
                     ENAS's final network: darts_train.py:enas (or
                     enas_digits) --config.genotype=WORKDIR/genotype.json.
Override any field from the command line, e.g.
  --config.search.arch_mode=first_order --config.epochs=10
The collapse tools: --config.hessian.every_epochs=1 records the Hessian's
eigenvalues in alpha, --config.hessian.early_stop=True stops by
RobustDARTS's rule, --config.beta_decay.per_epoch=0.5 is beta-DARTS.
"""

import ml_collections

from nasjax import errors
from nasjax.configs import common
from nasjax.search_spaces import darts_cell


SIZES = ('cifar10', 'cifar10_subset', 'digits', 'tiny')
VARIANTS = SIZES + ('enas_micro',) + tuple(f'enas_micro_{s}'
                                           for s in SIZES[1:])
# ENAS's micro ops in DARTS's names (its identity is skip_connect), 'none'
# first as DARTS's derivation needs.
ENAS_MICRO_PRIMITIVES = ('none', 'sep_conv_3x3', 'sep_conv_5x5',
                         'avg_pool_3x3', 'max_pool_3x3', 'skip_connect')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'cifar10'
  if arg not in VARIANTS:
    raise errors.ConfigError(
        f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  enas_micro = arg.startswith('enas_micro')
  if enas_micro:
    arg = arg[len('enas_micro_'):] or 'cifar10'
  # Reference seed 2; an epoch is one pass over the weight-training half.
  c = common.base(seed=2, batch_size=64, epochs=50, log_every_steps=20,
                  checkpoint_every_steps=200)
  # Fraction of the training split that trains weights; the rest trains alpha.
  c.data.train_portion = 0.5

  c.model = ml_collections.ConfigDict()
  # C: channels per node in the first cells (doubled at each reduction).
  c.model.channels = 16
  # Number of cells; reductions at layers // 3 and 2 * layers // 3.
  c.model.layers = 8
  # The stem has stem_multiplier * C channels.
  c.model.stem_multiplier = 3
  # Recompute each edge's forward pass during the backward pass instead of
  # storing it: about one more forward pass of compute, but on CPU it is
  # both faster and smaller (benchmarks: weight step 2.7 s vs 4.5 s, 2.8 vs
  # 7.8 GiB at C=8, 5 cells, batch 32).
  c.model.remat = True

  c.search_space = ml_collections.ConfigDict()
  # Candidate ops, in alpha-column order ('none' first).
  c.search_space.primitives = darts_cell.PRIMITIVES
  # Intermediate nodes per cell.
  c.search_space.steps = 4

  c.search = ml_collections.ConfigDict()
  # 'second_order' (exact hypergradient), 'first_order', 'finite_difference'
  # (the paper's approximation) or 'weights_only' (alpha frozen).
  c.search.arch_mode = 'second_order'
  # How 'second_order' computes the exact hypergradient: 'hvp' (chain rule
  # with a forward-over-reverse Hessian-vector product; less memory) or
  # 'unrolled' (reverse mode through the unrolled step). Same numbers.
  c.search.second_order_impl = 'hvp'
  # Run a 'second_order' or 'finite_difference' step as a few compiled
  # programs (one gradient pass compiled once and called three times, one
  # Hessian-vector product, small updates) instead of one: the same numbers,
  # faster to compile and less memory (benchmarks/README.md). 'first_order' always
  # runs as one program (staged, its validation pass would also compute a
  # weight gradient it does not need: 2.2x the step time at C=8, 5 cells,
  # 1.2x at C=16, 8 cells).
  c.search.staged = True
  # How many of the staged step's programs XLA compiles at a time, before
  # the first step: 2 overlaps the two network programs (at C=8, 5 cells on
  # 2 cores: 94-103 s instead of 129-131 s, with about 0.3 GiB more peak
  # memory); 1 compiles them one after another.
  c.search.compile_workers = 2
  # r = fd_radius / ||grad_w' L_val|| for 'finite_difference'.
  c.search.fd_radius = 0.01

  common.hessian(c)
  common.collapse_options(c)

  c.arch_optimizer = ml_collections.ConfigDict()
  # alpha: Adam(lr, betas=(b1, b2)) with coupled L2 weight decay.
  c.arch_optimizer.learning_rate = 3e-4
  c.arch_optimizer.b1 = 0.5
  c.arch_optimizer.b2 = 0.999
  c.arch_optimizer.weight_decay = 1e-3

  if arg == 'cifar10':
    pass
  elif arg == 'cifar10_subset':
    c.model.channels, c.model.layers = 8, 5
    c.batch_size, c.epochs = 32, 1
    c.search.arch_mode = 'first_order'
  elif arg == 'digits':
    common.digits_data(c)
    c.model.channels, c.model.layers = 8, 5
    c.batch_size, c.epochs = 32, 2
    c.log_every_steps, c.checkpoint_every_steps = 5, 10
  elif arg == 'tiny':
    common.digits_data(c)
    c.model.channels, c.model.layers = 4, 3
    c.search_space.primitives = ('none', 'max_pool_3x3', 'skip_connect',
                                 'dil_conv_3x3')
    c.search_space.steps = 2
    c.batch_size, c.epochs, c.max_steps = 8, 1, 2
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  if enas_micro:
    c.search_space.primitives = ENAS_MICRO_PRIMITIVES
    c.search_space.steps = 2 if arg == 'tiny' else 5
  return c
