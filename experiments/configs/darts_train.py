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
                     epochs, weight decay 3e-5, label smoothing 0.1. The
                     model, optimiser and loss are implemented; the ImageNet
                     input pipeline (decoding, RandomResizedCrop, colour
                     jitter) is not yet, so data.name must point at a dataset
                     that `data.get_dataset` can load.
  cifar10_subset     CIFAR-10 from shared/data (5,085 train / 1,017 test
                     images), C=8, 5 cells, no auxiliary head: minutes on CPU.
  digits             the bundled 8x8 digits (no download), C=8, 5 cells.
  tiny               tests: digits, C=4, 3 cells, 2 steps.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'cifar10'
  c = ml_collections.ConfigDict()
  # The genotype to train: a published name (DARTS_V1, DARTS_V2, NASNet,
  # AmoebaNet, ENAS), a .json / .txt file written by a search, or the
  # `Genotype(...)` notation itself.
  c.genotype = 'DARTS_V2'
  # Seed of initialisation, data order, augmentation and drop-path (ref.: 0).
  c.seed = 0
  # Devices to use; 0 means every device of every host.
  c.num_devices = 0
  # Global training batch size (over all devices).
  c.batch_size = 96
  # Global evaluation batch size (the last batch is padded and masked).
  c.eval_batch_size = 500
  # Training epochs over the whole training split.
  c.epochs = 600
  # If > 0, stop after this many steps.
  c.max_steps = 0
  # Evaluate on the test split every this many epochs (and at the end).
  c.eval_every_epochs = 10
  # Log a progress line every this many steps.
  c.log_every_steps = 50
  # Write a checkpoint every this many steps (and at the end, and on SIGTERM).
  c.checkpoint_every_steps = 1000
  # Checkpoints kept on disk.
  c.keep_checkpoints = 3
  # Depthwise convs: 'shift' (fastest on CPU), 'grouped' (GPU/TPU), 'loop'.
  c.depthwise_impl = 'shift'

  c.data = ml_collections.ConfigDict()
  # 'cifar10' (extracted python batches), 'tfds:<name>' or 'digits'.
  c.data.name = 'cifar10'
  # Directory of the data ('' for digits).
  c.data.data_dir = ''
  # [H, W, C] of the images; checked against the data.
  c.data.image_shape = (32, 32, 3)
  # Random-crop zero padding in pixels (0 disables the crop).
  c.data.crop_padding = 4
  # Random horizontal flips.
  c.data.flip = True
  # Cutout square side in pixels, after normalisation (0 disables).
  c.data.cutout_length = 16

  c.model = ml_collections.ConfigDict()
  # 'cifar' (NetworkCIFAR) or 'imagenet' (NetworkImageNet).
  c.model.kind = 'cifar'
  # C: channels per node in the first cells (doubled at each reduction).
  c.model.channels = 36
  # Number of cells; reductions at layers // 3 and 2 * layers // 3.
  c.model.layers = 20
  # Auxiliary head after the second reduction cell (training only).
  c.model.auxiliary = True

  c.train = ml_collections.ConfigDict()
  # Weight of the auxiliary head's loss.
  c.train.aux_weight = 0.4
  # Final drop-path probability; epoch e uses drop_path_prob * e / epochs.
  c.train.drop_path_prob = 0.2
  # Label smoothing of the cross-entropy (0 disables).
  c.train.label_smoothing = 0.0

  c.optimizer = ml_collections.ConfigDict()
  # 'cosine' (per epoch, learning_rate -> learning_rate_min) or
  # 'exponential' (learning_rate * gamma ** epoch).
  c.optimizer.schedule = 'cosine'
  c.optimizer.learning_rate = 0.025
  c.optimizer.learning_rate_min = 0.0
  c.optimizer.gamma = 0.97
  c.optimizer.momentum = 0.9
  # Coupled L2 weight decay (added to the gradient, as PyTorch SGD).
  c.optimizer.weight_decay = 3e-4
  # Global-norm gradient clip (0 disables).
  c.optimizer.grad_clip = 5.0

  if arg == 'cifar10':
    pass
  elif arg == 'imagenet':
    c.data.name, c.data.image_shape = 'tfds:imagenet2012', (224, 224, 3)
    c.data.crop_padding, c.data.cutout_length = 0, 0
    c.model.kind, c.model.channels, c.model.layers = 'imagenet', 48, 14
    c.batch_size, c.eval_batch_size, c.epochs = 128, 500, 250
    c.train.drop_path_prob, c.train.label_smoothing = 0.0, 0.1
    c.optimizer.schedule, c.optimizer.learning_rate = 'exponential', 0.1
    c.optimizer.weight_decay = 3e-5
    c.eval_every_epochs = 1
  elif arg == 'cifar10_subset':
    c.data.data_dir = '../shared/data/cifar10/cifar-10-batches-py'
    c.model.channels, c.model.layers, c.model.auxiliary = 8, 5, False
    c.batch_size, c.eval_batch_size, c.epochs = 32, 339, 2
    c.eval_every_epochs, c.log_every_steps = 1, 20
  elif arg == 'digits':
    c.data.name, c.data.image_shape = 'digits', (8, 8, 1)
    c.data.crop_padding, c.data.flip, c.data.cutout_length = 1, False, 2
    c.model.channels, c.model.layers, c.model.auxiliary = 8, 5, False
    c.batch_size, c.eval_batch_size, c.epochs = 32, 400, 5
    c.eval_every_epochs, c.log_every_steps = 1, 10
  elif arg == 'tiny':
    c.data.name, c.data.image_shape = 'digits', (8, 8, 1)
    c.data.crop_padding, c.data.flip, c.data.cutout_length = 1, False, 2
    c.model.channels, c.model.layers, c.model.auxiliary = 4, 3, False
    c.batch_size, c.eval_batch_size, c.epochs, c.max_steps = 8, 200, 1, 2
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  else:
    raise ValueError(f'Unknown config variant {arg!r}; valid: cifar10, '
                     'imagenet, cifar10_subset, digits, tiny.')
  return c
