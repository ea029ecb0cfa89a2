"""DARTS recurrent search configs: the paper's Penn Treebank setting and
small variants.

  python experiments/darts_search.py \
      --config=experiments/configs/darts_rnn_search.py:ARG --workdir=/tmp/rnn

ARG picks the variant:
  ptb (default)  the paper's search (reference `rnn/train_search.py`): 300
                 units, batch 256, bptt 35, 50 epochs, SGD lr 20, exact
                 second order. Needs --config.data.data_dir (a directory with
                 ptb.train.txt, ptb.valid.txt, ptb.test.txt; data/README.md).
                 Run it on an accelerator.
  synthetic      the same search, small (32 units, batch 32, bptt 20, 4
                 epochs, no dropout), on a generated corpus that needs no
                 download (`nasjax.data.ptb.synthetic`).
  tiny           tests: 8 units, a 3-node cell, 4 steps over 2 epochs.
Override any field from the command line, e.g.
  --config.search.arch_mode=first_order --config.epochs=10
"""

import ml_collections

from nasjax import errors
from nasjax.configs import common
from nasjax.search_spaces import darts_rnn

VARIANTS = ('ptb', 'synthetic', 'tiny')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'ptb'
  if arg not in VARIANTS:
    raise errors.ConfigError(
        f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  c = ml_collections.ConfigDict()
  # Reference rnn/train_search.py: seed 3, batch 256, 50 epochs, 300 units;
  # bptt // 2 with probability 0.05.
  common.language_model(c, seed=3, batch_size=256, epochs=50, units=300,
                        dropout_e=0.0, log_every_steps=50,
                        checkpoint_every_steps=200)

  c.search_space = ml_collections.ConfigDict()
  c.search_space.primitives = darts_rnn.PRIMITIVES
  c.search_space.steps = 8

  c.search = ml_collections.ConfigDict()
  # 'second_order' (exact), 'first_order', 'finite_difference'.
  c.search.arch_mode = 'second_order'
  c.search.second_order_impl = 'hvp'
  c.search.fd_radius = 0.01

  c.optimizer = ml_collections.ConfigDict()
  # Weights: plain SGD, lr rescaled by seq_len / bptt per window, the
  # gradient clipped to global norm grad_clip, coupled weight decay.
  c.optimizer.learning_rate = 20.0
  c.optimizer.weight_decay = 5e-7
  c.optimizer.grad_clip = 0.25
  common.clip_eps(c)

  c.arch_optimizer = ml_collections.ConfigDict()
  # alpha: Adam (PyTorch's default betas in the recurrent search) with
  # coupled L2 weight decay.
  c.arch_optimizer.learning_rate = 3e-3
  c.arch_optimizer.b1 = 0.9
  c.arch_optimizer.b2 = 0.999
  c.arch_optimizer.weight_decay = 1e-3

  if arg == 'synthetic':
    c.data.name = 'synthetic'
    c.model.units, c.batch_size, c.bptt, c.epochs = 32, 32, 20, 4
    # No dropout: a small model, a few hundred steps.
    for k in ('dropout', 'dropout_h', 'dropout_x', 'dropout_i'):
      c.model[k] = 0.0
    c.log_every_steps, c.checkpoint_every_steps = 10, 50
  elif arg == 'tiny':
    c.data.name = 'synthetic'
    c.model.units, c.batch_size, c.bptt, c.eval_batch_size = 8, 8, 5, 4
    # 3 windows per epoch, so 4 steps cross an epoch.
    c.data.synthetic_tokens, c.data.synthetic_vocab = (128, 400, 100), 30
    c.search_space.steps = 3
    c.epochs, c.max_steps = 2, 4
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  return c
