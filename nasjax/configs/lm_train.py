"""Language-model retraining configs: the DARTS paper's Penn Treebank
setting and small variants.

  python experiments/darts_train.py \
      --config=experiments/configs/lm_train.py:ARG --workdir=/tmp/lm \
      --config.genotype=DARTS_V2_RNN

ARG picks the variant:
  ptb (default)  the reference's rnn/train.py: 850 units, batch 64, bptt 35,
                 SGD lr 20 then averaged SGD, 8000 epochs (the DARTS paper's
                 55.7 test perplexity came from about 3,600). Needs
                 --config.data.data_dir (data/README.md). An accelerator's
                 job: weeks on one GPU.
  synthetic      a small run on the generated corpus (no download): 64
                 units, batch 32, dropouts 0.2, 8 epochs, averaging after
                 epoch 6 at the latest.
  tiny           tests: 8 units, 4 steps over 2 epochs.
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
  # Reference rnn/train.py: seed 1267, batch 64, 8000 epochs, 850 units.
  common.language_model(c, seed=1267, batch_size=64, epochs=8000,
                        units=850, dropout_e=0.1, log_every_steps=200,
                        checkpoint_every_steps=1000)
  # What to train: a published cell (DARTS_V1_RNN, DARTS_V2_RNN, ENAS_RNN),
  # a genotype.json a recurrent search wrote, or its notation.
  c.genotype = 'DARTS_V2_RNN'
  # Each window is max(5, N(bptt, 5)) long (bptt / 2 with probability
  # 0.05), at most bptt + max_seq_len_delta.
  c.max_seq_len_delta = 20
  # Windows are padded (and masked) to a multiple of this many tokens: one
  # compiled step per multiple.
  c.length_bucket = 5
  # Rows of the test split when it is evaluated (reference: 1).
  c.test_batch_size = 1

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.learning_rate = 20.0
  c.optimizer.weight_decay = 8e-7
  c.optimizer.grad_clip = 0.25
  common.clip_eps(c)
  # Averaged SGD starts after an epoch whose validation loss exceeds the
  # best one from before the last `nonmono` epochs; or at the end of epoch
  # `average_from_epoch` (1-based) at the latest, if that is > 0.
  c.optimizer.nonmono = 5
  c.optimizer.average_from_epoch = 0

  if arg == 'synthetic':
    c.data.name = 'synthetic'
    c.model.units, c.batch_size, c.bptt, c.epochs = 64, 32, 20, 8
    c.max_seq_len_delta = 10
    for k in ('dropout', 'dropout_h', 'dropout_x', 'dropout_i'):
      c.model[k] = 0.2
    c.model.dropout_e = 0.0
    c.optimizer.average_from_epoch = 6
    c.log_every_steps, c.checkpoint_every_steps = 20, 100
  elif arg == 'tiny':
    c.data.name = 'synthetic'
    c.data.synthetic_tokens, c.data.synthetic_vocab = (128, 100, 100), 30
    c.model.units, c.batch_size, c.bptt = 8, 8, 5
    c.max_seq_len_delta, c.eval_batch_size, c.test_batch_size = 2, 4, 2
    c.epochs, c.max_steps = 2, 6
    c.optimizer.average_from_epoch = 1
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  return c
