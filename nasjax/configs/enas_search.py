"""ENAS search configs: the reference's CIFAR-10 micro and macro searches.

  python experiments/enas_search.py \
      --config=experiments/configs/enas_search.py:ARG --workdir=/tmp/enas

ARG picks the variant:
  micro (default)  cells (reference scripts/cifar10_micro_search.sh): 6
                   layers (8 cells), 20 filters, 5 nodes, batch 160, 150
                   epochs; controller lr 0.0035, 30 updates of 10 children
                   per epoch. Needs --config.data.data_dir.
  macro            whole networks (cifar10_macro_search.sh): 12 layers, 36
                   filters, batch 128, 310 epochs; controller lr 0.001, 50
                   updates of 20 children, skip penalty 0.8 towards 0.4.
  digits           a micro search on the bundled 8x8 digits (no download):
                   6 epochs, a smoke run (minutes on a CPU). At this budget
                   the shared child stays near chance under sampled arcs,
                   as the reference's own child does (README).
  digits_long      the same search long enough to search: 150 epochs (5,250
                   child steps), child lr 0.2 (about 3 min on 2 CPU cores).
  micro_tiny, macro_tiny   tests: a few steps at tiny width.
Override any field, e.g. --config.epochs=10 --config.controller.train_steps=5
"""

import ml_collections

from nasjax import errors
from nasjax.configs import common

VARIANTS = ('micro', 'macro', 'digits', 'digits_long', 'micro_tiny',
            'macro_tiny')
SPACES = ('micro', 'macro')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'micro'
  if arg not in VARIANTS:
    raise errors.ConfigError(
        f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  macro = arg.startswith('macro')
  c = common.base(seed=0, batch_size=128 if macro else 160,
                  epochs=310 if macro else 150, log_every_steps=50,
                  checkpoint_every_steps=500)
  # If > 0, an epoch (child steps between controller phases) is this many
  # steps instead of one pass over the child's training images.
  c.steps_per_epoch = 0
  # 'micro' (cells) or 'macro' (whole network).
  c.space = 'macro' if macro else 'micro'
  # Training images held out (the last ones) for the controller's rewards
  # and for deriving; the reference holds out 5,000.
  c.data.num_valid = 5000

  c.model = ml_collections.ConfigDict()
  # F: filters of the first cells (micro, doubled at each reduction) or of
  # every layer (macro).
  c.model.channels = 36 if macro else 20
  # Micro: L (the network has L + 2 cells); macro: L layers.
  c.model.layers = 12 if macro else 6
  # Micro: new nodes per cell (B).
  c.model.nodes = 5
  # Dropout keep probability before the classifier.
  c.model.keep_prob = 0.9
  # Micro: weight of the auxiliary head's loss (0: no head).
  c.model.aux_weight = 0.0 if macro else 0.4
  # Micro: drop-path keep probability at the last cell, ramped in over the
  # run and with depth. 1.0 (off) is the reference's search child, which
  # passes its 0.6 and ignores it; < 1 applies it.
  c.model.drop_path_keep = 1.0

  # Shared weights: SGD, Nesterov momentum, cosine with warm restarts.
  c.optimizer.learning_rate = 0.05
  c.optimizer.learning_rate_min = 0.0005
  c.optimizer.momentum = 0.9
  # Restart periods: t0 epochs, then t0 * t_mul, t0 * t_mul^2, ...
  c.optimizer.t0 = 10
  c.optimizer.t_mul = 2
  # The reference's l2_reg: the loss carries l2 * sum(w^2), i.e. SGD weight
  # decay 2 * l2.
  del c.optimizer.weight_decay, c.optimizer.grad_clip_eps  # TF: no eps.
  c.optimizer.l2 = 2.5e-4 if macro else 1e-4
  c.optimizer.grad_clip = 5.0

  c.controller = ml_collections.ConfigDict()
  c.controller.lstm_size = 64
  # Logits / temperature (0: none), then tanh_constant * tanh (0: none).
  c.controller.temperature = 0.0
  c.controller.tanh_constant = 1.5 if macro else 1.1
  # Micro op logits use tanh_constant / op_tanh_reduce.
  c.controller.op_tanh_reduce = 2.5
  # Adam, b1 = 0 and eps = 1e-3 (reference), constant learning rate.
  c.controller.learning_rate = 0.001 if macro else 0.0035
  # 'tf1': TensorFlow 1's Adam, eps added to the uncorrected sqrt(v) (the
  # reference's: at eps = 1e-3 its first updates are several times
  # smaller); 'optax': optax.adam, eps added after bias correction.
  c.controller.adam_form = 'tf1'
  # Added to the reward: entropy_weight * entropy of the sampled arc.
  c.controller.entropy_weight = 1e-4
  # EMA baseline: b <- b - (1 - decay)(b - reward).
  c.controller.baseline_decay = 0.99
  # Macro skip penalty: skip_weight * KL(skip probability || skip_target);
  # 'sampled' computes it on the probability actually sampled, 'reference'
  # on sigmoid(q) as the reference (which steers towards about 0.31).
  c.controller.skip_weight = 0.8 if macro else 0.0
  c.controller.skip_target = 0.4
  c.controller.skip_penalty_form = 'sampled'
  # Updates per epoch, and children (validation minibatches) per update.
  c.controller.train_steps = 50 if macro else 30
  c.controller.num_aggregate = 20 if macro else 10

  c.derive = ml_collections.ConfigDict()
  # Arcs sampled from the trained controller at the end; the best on the
  # same validation batches is kept.
  c.derive.num_samples = 100
  # Validation batches (of batch_size) every candidate is scored on.
  c.derive.num_batches = 10
  # Each epoch: this many sampled arcs scored the same way, best reported.
  c.derive.report_samples = 10

  if arg in ('digits', 'digits_long'):
    common.digits_data(c)
    c.data.num_valid = 300
    c.model.channels, c.model.layers, c.model.nodes = 8, 3, 3
    c.model.aux_weight = 0.0
    c.batch_size, c.epochs = 32, 6
    c.optimizer.t0 = 2
    c.controller.train_steps, c.controller.num_aggregate = 10, 4
    c.derive.num_samples, c.derive.num_batches = 20, 4
    c.derive.report_samples = 5
    c.log_every_steps, c.checkpoint_every_steps = 10, 50
    if arg == 'digits_long':
      # Weight sharing at this size learns slowly (a uniformly random arc
      # per step: 0.2 train accuracy after 500 steps, where one arc trained
      # alone reaches 0.96); a larger rate and 25x the steps let the shared
      # child and the controller improve together.
      c.epochs = 150
      c.optimizer.learning_rate = 0.2
      c.log_every_steps, c.checkpoint_every_steps = 100, 500
  elif arg.endswith('_tiny'):
    common.digits_data(c)
    c.data.num_valid = 64
    # Micro: 3 cells (both reductions and a normal cell); macro: 3 layers.
    c.model.channels, c.model.nodes = 4, 2
    c.model.layers = 3 if macro else 1
    # One grouped convolution per depthwise conv: half the compile time of
    # 'shift' here (every impl is checked against the others in ops_test).
    c.depthwise_impl = 'grouped'
    c.model.aux_weight = 0.0
    c.batch_size, c.epochs = 8, 2
    c.optimizer.t0 = 1
    c.steps_per_epoch = 2
    c.controller.lstm_size = 16
    c.controller.train_steps, c.controller.num_aggregate = 2, 2
    c.derive.num_samples, c.derive.num_batches = 4, 2
    c.derive.report_samples = 2
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  return c
