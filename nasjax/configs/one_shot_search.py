"""One-shot search configs: a search space and a strategy, named as a pair.

  python experiments/search.py \
      --config=experiments/configs/one_shot_search.py:nb201_gdas \
      --workdir=/tmp/gdas

ARG is `<space>_<strategy>[_<size>]`:
  space      nb201 (NAS-Bench-201, `nasjax.search_spaces.nb201`; every
             strategy below), darts_cell (the DARTS CIFAR cell,
             `nasjax.search_spaces.darts_cell_one_shot`; gdas, rsps and enas,
             with the DARTS search's network, 50 epochs; enas by ENAS's
             micro controller)
  strategy   darts (first order), darts2 (exact second order), gdas,
             rsps (random-sampling one-shot), enas (ENAS's controller)
  size       (none)   the NB201 paper's search: C=16, N=5, batch 64, CIFAR-10
                      (--config.data.data_dir: the extracted
                      cifar-10-batches-py directory); DARTS 50 epochs, GDAS,
                      RSPS and ENAS 250 (AutoDL-Projects' NB201 configs)
             subset   the same network on a CIFAR-10 subset of about 5,000
                      training images at --config.data.data_dir, 20 epochs
                      (benchmarks/nb201_search.py); ENAS's controller 10
                      updates of 10 cells per epoch
             digits   C=8, N=1 (darts_cell: 5 cells) on the bundled 8x8
                      digits (no download), 4 epochs
             tiny     tests: C=4, N=1 (darts_cell: 3 cells), digits, 2 steps
Set --config.table to a NAS-Bench-201 table (CSV: arch, cellstr,
<dataset>-val, <dataset>-test) to have the derived cell looked up in it.
DARTS's collapse tools (`configs/common.py`): --config.hessian.every_epochs=1
(the Hessian monitor, DARTS only), --config.hessian.early_stop=True
(DARTS-ES), --config.beta_decay.per_epoch=0.5 (beta-DARTS; DARTS and GDAS).
"""

import ml_collections

from nasjax import errors
from nasjax.configs import common

SPACES = ('nb201', 'darts_cell')
STRATEGIES = {'darts': ('darts', 'first_order'),
              'darts2': ('darts', 'second_order'),
              'gdas': ('gdas', 'first_order'),
              'rsps': ('random_sampling', 'weights_only'),
              'enas': ('enas', 'weights_only')}
# The strategies each space is searched by here (DARTS on the DARTS cell
# is `nasjax.configs.darts_search`).
PAIRS = {'nb201': ('darts', 'darts2', 'gdas', 'rsps', 'enas'),
         'darts_cell': ('gdas', 'rsps', 'enas')}
SIZES = ('', 'subset', 'digits', 'tiny')
VARIANTS = tuple(f'{sp}_{st}{"_" + sz if sz else ""}' for sp in SPACES
                 for st in PAIRS[sp] for sz in SIZES)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'nb201_gdas'
  if arg not in VARIANTS:
    raise errors.ConfigError(
        f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  space = next(sp for sp in SPACES if arg.startswith(sp + '_'))
  strategy, *size = arg[len(space) + 1:].split('_')
  size = size[0] if size else ''
  c = common.base(seed=0, batch_size=64, epochs=250, log_every_steps=50,
                  checkpoint_every_steps=500)
  # AutoDL-Projects' NB201 search settings: SGD Nesterov, lr 0.025 cosine
  # to 0.001, momentum 0.9, weight decay 5e-4, clip 5.
  c.optimizer.weight_decay = 5e-4
  c.optimizer.nesterov = True
  # The training split's fraction that trains the weights; the rest trains
  # alpha (and, for rsps, ranks the sampled cells).
  c.data.train_portion = 0.5
  # The search space: 'nb201' or 'darts_cell'.
  c.space = space

  c.model = ml_collections.ConfigDict()
  # C of the first stage and N cells per stage (NB201: 16, 5).
  c.model.channels = 16
  c.model.cells_per_stage = 5
  # darts_cell: the number of cells (reductions at 1/3 and 2/3).
  c.model.layers = 8
  # NB201 under GDAS, RSPS and ENAS (one op per edge): 'reference' runs the
  # selected op and adds the unselected ops' weights as scalars (AutoDL's
  # forward_gdas: value 0, gradient 1), 'drop' leaves them out, 'every_op'
  # computes every op times its 0/1 weight (no conditionals: about 8x
  # faster on CPU; GDAS's alpha gradient then reaches every op's output).
  c.model.unselected_weights = 'reference'

  c.strategy = ml_collections.ConfigDict()
  # 'darts', 'gdas', 'random_sampling' or 'enas'.
  c.strategy.name, arch_mode = STRATEGIES[strategy]
  # How alpha's gradient is taken: 'first_order', 'second_order' (exact),
  # 'finite_difference'; 'weights_only' for random_sampling (no alpha).
  c.strategy.arch_mode = arch_mode
  # GDAS: the Gumbel-softmax temperature, linear by epoch from tau_max to
  # tau_min.
  c.strategy.tau_max = 10.0
  c.strategy.tau_min = 0.1

  # ENAS: the controller (`nasjax.strategies.enas`; AutoDL's NB201 ENAS:
  # LSTM 32, temperature 5, tanh constant 2.5, Adam lr 1e-3 betas (0,
  # 0.999) eps 1e-3, entropy weight 1e-4, baseline decay 0.99, 50 updates
  # of 20 sampled cells after every epoch).
  c.strategy.controller = ml_collections.ConfigDict()
  ctl = c.strategy.controller
  ctl.lstm_size, ctl.temperature, ctl.tanh_constant = 32, 5.0, 2.5
  ctl.learning_rate, ctl.b1, ctl.eps = 1e-3, 0.0, 1e-3
  # 'tf1': TensorFlow 1's Adam (the ENAS reference's); 'optax' (AutoDL's
  # PyTorch Adam adds eps after the bias correction, as optax does).
  ctl.adam_form = 'optax'
  ctl.entropy_weight, ctl.baseline_decay = 1e-4, 0.99
  ctl.train_steps, ctl.num_aggregate = 50, 20

  c.arch_optimizer = ml_collections.ConfigDict()
  # alpha: Adam(lr, betas (b1, b2)) with coupled L2 weight decay
  # (AutoDL's NB201 DARTS and GDAS: 3e-4, (0.5, 0.999), 1e-3).
  c.arch_optimizer.learning_rate = 3e-4
  c.arch_optimizer.b1 = 0.5
  c.arch_optimizer.b2 = 0.999
  c.arch_optimizer.weight_decay = 1e-3

  # DARTS only (the loss of a sampled cell has no Hessian in alpha).
  common.hessian(c)
  common.collapse_options(c)

  c.derive = ml_collections.ConfigDict()
  # rsps: cells sampled at the end and ranked by their accuracy on the
  # same validation batches with the shared weights (AutoDL: 100); every
  # strategy also scores this many uniformly random cells the same way, for
  # comparison.
  c.derive.num_samples = 100
  # Validation batches each cell is scored on.
  c.derive.batches = 4

  # A NAS-Bench-201 table to look the derived cell up in ('' : none).
  c.table = ''
  # Its dataset columns: select on <table_dataset>-val, report -test.
  c.table_dataset = 'cifar10'

  if strategy == 'darts' or strategy == 'darts2' or space == 'darts_cell':
    c.epochs = 50
  if space == 'darts_cell':
    # The DARTS CIFAR-10 search's network and optimisers (C=16, 8 cells,
    # batch 64, SGD 0.025 cosine to 0.001, weight decay 3e-4, clip 5; alpha
    # Adam 3e-4, betas (0.5, 0.999), weight decay 1e-3), 50 epochs.
    c.optimizer.weight_decay, c.optimizer.nesterov = 3e-4, False
  if strategy == 'enas':
    # AutoDL's ENAS.config: lr 0.05 cosine to 5e-4, weight decay 2.5e-4,
    # batch 128.
    c.optimizer.learning_rate, c.optimizer.learning_rate_min = 0.05, 5e-4
    c.optimizer.weight_decay, c.batch_size = 2.5e-4, 128
  if strategy == 'enas' and space == 'darts_cell':
    # ENAS's micro controller (LSTM 64; Adam 0.0035, b1 0, eps 1e-3 in
    # TF1's form; 30 updates of 10 cells per epoch) with AutoDL's logit
    # shaping (temperature 5, tanh constant 2.5; op logits 2.5 / 2.5): on
    # the planted DARTS-cell problem the reference's caps (1.1, op 0.44)
    # and AutoDL's whole settings learnt less (docs/design.md).
    ctl.lstm_size, ctl.learning_rate, ctl.adam_form = 64, 0.0035, 'tf1'
    ctl.train_steps, ctl.num_aggregate = 30, 10
  if size == 'subset':
    c.epochs = 20
    c.log_every_steps, c.checkpoint_every_steps = 10, 100
    # A CPU-sized controller phase: 10 updates of 10 cells per epoch.
    ctl.train_steps, ctl.num_aggregate = 10, 10
  elif size == 'digits':
    common.digits_data(c)
    c.model.channels, c.model.cells_per_stage, c.model.layers = 8, 1, 5
    c.batch_size, c.epochs = 32, 4
    c.log_every_steps, c.checkpoint_every_steps = 5, 20
    c.derive.num_samples, c.derive.batches = 20, 2
    ctl.train_steps, ctl.num_aggregate = 10, 10
  elif size == 'tiny':
    common.digits_data(c)
    c.model.channels, c.model.cells_per_stage, c.model.layers = 4, 1, 3
    c.batch_size, c.epochs, c.max_steps = 8, 1, 2
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
    c.derive.num_samples, c.derive.batches = 4, 1
    ctl.train_steps, ctl.num_aggregate = 2, 2
  return c
