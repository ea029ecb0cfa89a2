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

from nasjax.search_spaces import darts_rnn

VARIANTS = ('ptb', 'synthetic', 'tiny')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'ptb'
  if arg not in VARIANTS:
    raise ValueError(f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  c = ml_collections.ConfigDict()
  # The cell family: this config searches a recurrent cell.
  c.cell = 'recurrent'
  # Seed of initialisation, window lengths and dropout masks (reference: 3).
  c.seed = 3
  # Devices to use; 0 means every device of every host.
  c.num_devices = 0
  # CPU runs only: XLA devices to split the CPU into (1: no split).
  c.cpu_devices = 1
  # Rows of the training (and alpha) token matrices: the global batch.
  c.batch_size = 256
  # Epochs; an epoch reads the training split once, in windows.
  c.epochs = 50
  # If > 0, stop after this many steps.
  c.max_steps = 0
  c.log_every_steps = 50
  c.checkpoint_every_steps = 200
  c.keep_checkpoints = 3
  # Window length (tokens per step; bptt // 2 with probability 0.05).
  c.bptt = 35
  # Rows of the validation split when its perplexity is evaluated after
  # every epoch (reference: 10).
  c.eval_batch_size = 10

  c.data = ml_collections.ConfigDict()
  # 'ptb' (Mikolov's files in data_dir) or 'synthetic' (generated).
  c.data.name = 'ptb'
  c.data.data_dir = ''
  # 'synthetic' only: tokens of the generated train, valid and test splits
  # and the vocabulary size (`nasjax.data.ptb.synthetic`).
  c.data.synthetic_tokens = (30_000, 6_000, 6_000)
  c.data.synthetic_vocab = 200

  c.model = ml_collections.ConfigDict()
  # Embedding = hidden size.
  c.model.units = 300
  # Dropouts: cell outputs, hidden-state mask, input mask, embeddings
  # (locked), embedding rows.
  c.model.dropout = 0.75
  c.model.dropout_h = 0.25
  c.model.dropout_x = 0.75
  c.model.dropout_i = 0.2
  c.model.dropout_e = 0.0
  # Temporal activation regularisation (beta), training loss only.
  c.model.tar = 1e-3

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
    c.model.units, c.batch_size, c.bptt, c.eval_batch_size = 8, 4, 5, 4
    # 3 windows per epoch, so 4 steps cross an epoch.
    c.data.synthetic_tokens, c.data.synthetic_vocab = (64, 400, 100), 30
    c.search_space.steps = 3
    c.epochs, c.max_steps = 2, 4
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  return c
