"""Configs for training a genotype from scratch (the DARTS evaluation).

  python experiments/darts_train.py \
      --config=experiments/configs/darts_train.py:ARG --workdir=/tmp/train \
      [--config.genotype=DARTS_V2 | path/to/genotype.json | "Genotype(...)"]

ARG picks the variant:
  cifar10 (default)  the paper's protocol (reference `cnn/train.py --auxiliary
                     --cutout`): C=36, 20 cells, batch 96, 600 epochs, cosine
                     lr 0.025 -> 0, cutout 16, drop-path 0.2 ramped linearly,
                     auxiliary weight 0.4, clip 5, test split evaluated.
  imagenet           the mobile setting (reference `cnn/train_imagenet.py`):
                     C=48, 14 cells, batch 128, lr 0.1 x 0.97 per epoch, 250
                     epochs, weight decay 3e-5, label smoothing 0.1; ImageNet
                     streamed from a prepared TFDS directory at
                     --config.data.data_dir (`nasjax.data.streaming`:
                     decoding, random resized crops, flips and colour jitter
                     in host threads).
  cifar10_subset     C=8, 5 cells, no auxiliary head, 2 epochs: minutes on CPU
                     for a CIFAR-10 subset of about 5,000 training images at
                     --config.data.data_dir.
  digits             the bundled 8x8 digits (no download), C=8, 5 cells.
  tiny               tests: digits, C=4, 3 cells, 2 steps.

ENAS's final networks (`nasjax.enas.final`; genotype = an ENAS arc):
  enas_micro         reference `cifar10_micro_final.sh`: ENAS_MICRO, 15
                     layers (17 cells), F=36, batch 144, 630 epochs, cosine
                     with warm restarts (T0 10, T_mul 2) lr 0.05 -> 0.0001,
                     L2 2e-4 in the loss, Nesterov, clip 5, dropout keep 0.8,
                     drop-path keep 0.6 ramped over the steps, auxiliary
                     weight 0.4, no cutout.
  enas_macro         reference `cifar10_macro_final.sh`: ENAS_MACRO (24
                     layers; model.layers 0 takes the arc's), F=96, batch 104
                     (the reference's 100 rounded to 8 devices), 310
                     epochs, lr 0.05 -> 0.001, L2 2e-4, dropout keep 0.5,
                     no auxiliary head.
  enas_digits        ENAS_MICRO on the bundled digits, F=8, 3 layers.
  enas_tiny          tests: digits, F=4, 3 layers, 2 steps.

NAS-Bench-201's network (genotype = an NB201 cell string, or a search's
cell.txt; model.layers = N, cells per stage):
  nb201              the benchmark's recipe (Dong & Yang, 2020): C=16, N=5,
                     batch 256, SGD Nesterov 0.1 cosine to 0, weight decay
                     5e-4, 200 epochs, crops and flips, no cutout, no
                     clipping, no auxiliary head, no drop-path.
  nb201_12           the same, 12 epochs (the schedule of the benchmark's
                     12-epoch accuracies).
  nb201_digits       the bundled digits, C=8, N=1, 5 epochs.
  nb201_tiny         tests: digits, C=4, N=1, 2 steps.
"""

import ml_collections

from nasjax import errors
from nasjax.configs import common


VARIANTS = ('cifar10', 'imagenet', 'cifar10_subset', 'digits', 'tiny',
            'enas_micro', 'enas_macro', 'enas_digits', 'enas_tiny',
            'nb201', 'nb201_12', 'nb201_digits', 'nb201_tiny')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'cifar10'
  if arg not in VARIANTS:
    raise errors.ConfigError(
        f'Unknown config variant {arg!r}; valid: {VARIANTS}.')
  # Reference seed 0; training uses the whole training split.
  c = common.base(seed=0, batch_size=96, epochs=600, log_every_steps=50,
                  checkpoint_every_steps=1000)
  # The genotype to train: a published name (DARTS_V1, DARTS_V2, NASNet,
  # AmoebaNet, ENAS; ENAS_MICRO, ENAS_MACRO for the enas presets), a .json /
  # .txt file written by a search, or the `Genotype(...)` notation itself.
  c.genotype = 'DARTS_V2'
  # Global evaluation batch size (the last batch is padded and masked;
  # rounded up to a multiple of the device count).
  c.eval_batch_size = 500
  # Evaluate on the test split every this many epochs (and at the end).
  c.eval_every_epochs = 10
  # Cutout square side in pixels, after normalisation (0 disables).
  c.data.cutout_length = 16

  c.model = ml_collections.ConfigDict()
  # 'cifar' (NetworkCIFAR) or 'imagenet' (NetworkImageNet): DARTS
  # genotypes; 'enas': ENAS's final networks (micro or macro, by the arc).
  c.model.kind = 'cifar'
  # C: channels per node in the first cells (doubled at each reduction).
  c.model.channels = 36
  # Number of cells; reductions at layers // 3 and 2 * layers // 3. ENAS
  # micro: L, for L + 2 cells; ENAS macro: the arc's layers (0: whatever
  # the arc has).
  c.model.layers = 20
  # Auxiliary head after the second reduction cell (training only).
  c.model.auxiliary = True
  # Dropout keep probability before the classifier (ENAS networks only).
  c.model.keep_prob = 1.0

  c.train = ml_collections.ConfigDict()
  # Weight of the auxiliary head's loss.
  c.train.aux_weight = 0.4
  # Final drop-path probability; ramp 'epoch' (DARTS): epoch e uses
  # drop_path_prob * e / epochs; 'step' (ENAS): min(1, (step + 1) / steps)
  # * drop_path_prob, scaled by (cell + 1) / cells inside the network.
  c.train.drop_path_prob = 0.2
  c.train.drop_path_ramp = 'epoch'
  # Label smoothing of the cross-entropy (0 disables).
  c.train.label_smoothing = 0.0

  # The lr anneals to learning_rate_min ('cosine'), decays by gamma per epoch
  # ('exponential'), or anneals with warm restarts after t0, t0 t_mul, ...
  # epochs ('sgdr', ENAS).
  c.optimizer.schedule = 'cosine'
  c.optimizer.learning_rate_min = 0.0
  c.optimizer.gamma = 0.97
  c.optimizer.t0, c.optimizer.t_mul = 10, 2
  # ENAS's regulariser instead of weight_decay: l2 * sum(w^2) in the loss
  # (gradient 2 l2 w, clipped with the rest), SGD with Nesterov momentum.
  # Set weight_decay to 0 when using it.
  c.optimizer.l2 = 0.0
  # Nesterov momentum (NAS-Bench-201's recipe).
  c.optimizer.nesterov = False

  if arg == 'cifar10':
    pass
  elif arg == 'imagenet':
    c.data.name, c.data.image_shape = 'tfds:imagenet2012', (224, 224, 3)
    # The host pipeline crops, flips and jitters (`data.streaming`): the
    # device only normalises.
    c.data.crop_padding, c.data.cutout_length, c.data.flip = 0, 0, False
    # Decoding threads (0: one per core) and global batches decoded ahead.
    c.data.workers, c.data.prefetch = 0, 2
    c.model.kind, c.model.channels, c.model.layers = 'imagenet', 48, 14
    c.batch_size, c.eval_batch_size, c.epochs = 128, 500, 250
    c.train.drop_path_prob, c.train.label_smoothing = 0.0, 0.1
    c.optimizer.schedule, c.optimizer.learning_rate = 'exponential', 0.1
    c.optimizer.weight_decay = 3e-5
    c.eval_every_epochs = 1
  elif arg == 'cifar10_subset':
    c.model.channels, c.model.layers, c.model.auxiliary = 8, 5, False
    c.batch_size, c.eval_batch_size, c.epochs = 32, 256, 2
    c.eval_every_epochs, c.log_every_steps = 1, 20
  elif arg == 'digits':
    common.digits_data(c)
    c.data.cutout_length = 2
    c.model.channels, c.model.layers, c.model.auxiliary = 8, 5, False
    c.batch_size, c.eval_batch_size, c.epochs = 32, 400, 5
    c.eval_every_epochs, c.log_every_steps = 1, 10
  elif arg == 'tiny':
    common.digits_data(c)
    c.data.cutout_length = 2
    c.model.channels, c.model.layers, c.model.auxiliary = 4, 3, False
    c.batch_size, c.eval_batch_size, c.epochs, c.max_steps = 8, 200, 1, 2
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  elif arg.startswith('enas'):
    _enas(c, arg)
  elif arg.startswith('nb201'):
    _nb201(c, arg)
  return c


def _nb201(c: ml_collections.ConfigDict, arg: str) -> None:
  """NAS-Bench-201's training of every cell (its `LESS` 12-epoch and
  200-epoch schedules)."""
  c.genotype = ('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|'
                'skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|')
  c.model.kind, c.model.channels, c.model.layers = 'nb201', 16, 5
  c.model.auxiliary = False
  c.data.cutout_length = 0
  c.train.drop_path_prob = 0.0
  c.optimizer.learning_rate, c.optimizer.learning_rate_min = 0.1, 0.0
  c.optimizer.weight_decay, c.optimizer.grad_clip = 5e-4, 0.0
  c.optimizer.nesterov = True
  c.batch_size, c.epochs, c.eval_every_epochs = 256, 200, 10
  if arg == 'nb201_12':
    c.epochs, c.eval_every_epochs = 12, 1
  elif arg in ('nb201_digits', 'nb201_tiny'):
    common.digits_data(c)
    c.model.channels, c.model.layers = 8, 1
    c.batch_size, c.eval_batch_size, c.epochs = 32, 400, 5
    c.eval_every_epochs, c.log_every_steps = 1, 10
    if arg == 'nb201_tiny':
      c.model.channels, c.batch_size, c.epochs, c.max_steps = 4, 8, 1, 2
      c.eval_batch_size, c.log_every_steps = 200, 1
      c.checkpoint_every_steps = 1


def _enas(c: ml_collections.ConfigDict, arg: str) -> None:
  """The reference's final training (`cifar10_{micro,macro}_final.sh`)."""
  c.genotype = 'ENAS_MACRO' if arg == 'enas_macro' else 'ENAS_MICRO'
  c.model.kind = 'enas'
  c.data.cutout_length = 0
  c.optimizer.schedule, c.optimizer.learning_rate = 'sgdr', 0.05
  c.optimizer.learning_rate_min, c.optimizer.l2 = 0.0001, 2e-4
  c.optimizer.weight_decay = 0.0
  c.train.drop_path_prob, c.train.drop_path_ramp = 0.4, 'step'
  c.model.keep_prob = 0.8
  c.model.channels, c.model.layers = 36, 15
  c.batch_size, c.epochs = 144, 630
  if arg == 'enas_macro':
    c.model.channels, c.model.layers, c.model.auxiliary = 96, 0, False
    c.model.keep_prob, c.optimizer.learning_rate_min = 0.5, 0.001
    c.train.drop_path_prob = 0.0
    # The reference's batch is 100; 104 divides across 8 devices.
    c.batch_size, c.epochs = 104, 310
  elif arg in ('enas_digits', 'enas_tiny'):
    common.digits_data(c)
    c.model.channels, c.model.layers, c.model.auxiliary = 8, 3, False
    c.batch_size, c.eval_batch_size, c.epochs = 32, 400, 5
    c.optimizer.t0 = 5
    c.eval_every_epochs, c.log_every_steps = 1, 10
    if arg == 'enas_tiny':
      # 'grouped' depthwise convs compile faster than 'shift' here.
      c.depthwise_impl = 'grouped'
      c.model.channels, c.batch_size, c.epochs, c.max_steps = 4, 8, 1, 2
      c.eval_batch_size, c.log_every_steps = 200, 1
      c.checkpoint_every_steps = 1
