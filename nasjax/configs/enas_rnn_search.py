"""ENAS recurrent search configs: the corrected reference's Penn Treebank
search and small variants.

  python experiments/enas_search.py \
      --config=experiments/configs/enas_rnn_search.py:ARG --workdir=/tmp/er

ARG picks the variant:
  ptb (default)  the corrected reference's search (google-research
                 `enas_lm/src/{search,child,controller}.py`): 8 nodes, 200
                 units, batch 128, bptt 35, SGD lr 20 clipped at 0.1;
                 controller lr 5e-5, 25 updates of 10 children per epoch.
                 Needs --config.data.data_dir (ptb.train.txt, ptb.valid.txt,
                 ptb.test.txt; data/README.md). Run it on an accelerator.
  synthetic      the same search, small (32 units, batch 32, bptt 20, 30
                 epochs, no dropout, a faster controller), on a generated
                 corpus that needs no download (`nasjax.data.ptb.synthetic`).
  tiny           tests: 8 units, a 3-node cell, 4 steps over 2 epochs.
Override any field from the command line, e.g.
  --config.model.output=all --config.epochs=100
"""

import ml_collections

from nasjax import errors
from nasjax.configs import common

VARIANTS = ('ptb', 'synthetic', 'tiny')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'ptb'
  if arg not in VARIANTS:
    raise errors.ConfigError(
        f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  c = ml_collections.ConfigDict()
  # enas_lm child.py: batch 128, 200 units, 600 epochs; dropouts e 0.1, i
  # 0.2, x 0.75, l (hidden) 0.25, o 0.75; slowness (TAR) 1.
  common.language_model(c, seed=0, batch_size=128, epochs=600, units=200,
                        dropout_e=0.1, log_every_steps=50,
                        checkpoint_every_steps=200)
  c.model.tar = 1.0
  # The ENAS recurrent space.
  c.space = 'recurrent'
  # Nodes after node 0 (the corrected reference's code searches 9, its
  # published cell has 8).
  c.model.nodes = 8
  # The cell's output: 'loose_ends' (the paper: the mean of the nodes no
  # node reads) or 'all' (the corrected reference code: all nodes).
  c.model.output = 'loose_ends'

  c.optimizer = ml_collections.ConfigDict()
  # Shared weights: plain SGD, lr rescaled by seq_len / bptt per window,
  # global-norm clip, coupled weight decay (the reference's is an L4 term:
  # not copied).
  c.optimizer.learning_rate = 20.0
  c.optimizer.weight_decay = 8e-7
  c.optimizer.grad_clip = 0.1

  c.controller = ml_collections.ConfigDict()
  c.controller.lstm_size = 64
  # Logits / temperature, then tanh_constant * tanh (0: none).
  c.controller.temperature = 5.0
  c.controller.tanh_constant = 2.25
  # Adam (TF's defaults: b1 0.9, eps 1e-8).
  c.controller.learning_rate = 5e-5
  c.controller.b1 = 0.9
  c.controller.eps = 1e-8
  # 'tf1': TensorFlow 1's Adam, eps added to the uncorrected sqrt(v) (the
  # reference's); 'optax': optax.adam, eps added after bias correction.
  c.controller.adam_form = 'tf1'
  # Reward: reward_constant / validation perplexity of the child on one
  # window, plus entropy_weight * entropy of the sampled arc.
  c.controller.reward_constant = 80.0
  c.controller.entropy_weight = 1e-5
  # EMA baseline: b <- b - (1 - decay)(b - reward).
  c.controller.baseline_decay = 0.999
  # Updates per epoch, and children (validation windows) per update.
  c.controller.train_steps = 25
  c.controller.num_aggregate = 10

  c.derive = ml_collections.ConfigDict()
  # Arcs sampled from the trained controller at the end; the one with the
  # lowest perplexity on the same validation windows is kept.
  c.derive.num_samples = 100
  # Validation windows (of bptt tokens, batch_size rows, the hidden state
  # carried) every candidate is scored on.
  c.derive.num_windows = 10
  # Each epoch: this many sampled arcs scored the same way, best reported.
  c.derive.report_samples = 10

  if arg == 'synthetic':
    c.data.name = 'synthetic'
    c.model.units, c.batch_size, c.bptt, c.epochs = 32, 32, 20, 30
    for k in ('dropout', 'dropout_h', 'dropout_x', 'dropout_i', 'dropout_e'):
      c.model[k] = 0.0
    c.model.tar = 1e-3
    c.optimizer.grad_clip = 0.25
    # A few hundred child steps: the controller must learn faster.
    c.controller.learning_rate = 3e-3
    c.controller.baseline_decay = 0.95
    c.controller.train_steps = 10
    c.derive.num_samples, c.derive.num_windows = 50, 5
    c.log_every_steps, c.checkpoint_every_steps = 10, 50
  elif arg == 'tiny':
    c.data.name = 'synthetic'
    c.model.units, c.batch_size, c.bptt, c.eval_batch_size = 8, 8, 5, 4
    # 3 windows per epoch, so 4 steps cross an epoch.
    c.data.synthetic_tokens, c.data.synthetic_vocab = (128, 400, 100), 30
    c.model.nodes = 3
    c.epochs, c.max_steps = 2, 4
    c.controller.lstm_size = 16
    c.controller.train_steps, c.controller.num_aggregate = 2, 2
    c.derive.num_samples, c.derive.num_windows = 4, 2
    c.derive.report_samples = 2
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  return c
