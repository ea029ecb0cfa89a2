"""DARTS search configs: the paper's CIFAR-10 setting and small variants.

  python experiments/darts_search.py \
      --config=experiments/configs/darts_search.py:ARG --workdir=/tmp/darts

ARG picks the variant:
  cifar10 (default)  the paper's search (reference `cnn/train_search.py`):
                     C=16, 8 cells, batch 64, 50 epochs, exact second order.
                     Needs the extracted CIFAR-10 at config.data.data_dir.
                     The reference code needs ~13 days on a 2-core CPU for
                     this; run it on an accelerator.
  digits             the README's main command: the same search on the
                     8x8 UCI digits that ship with scikit-learn (no download),
                     C=8, 5 cells, 2 epochs.
  cifar10_subset     CIFAR-10 from shared/data (5,085 train images), small.
  tiny               tests: C=4, 3 cells, a 4-op space, 2 steps.
Override any field from the command line, e.g.
  --config.search.arch_mode=first_order --config.epochs=10
"""

import ml_collections

from nasjax.search_spaces import darts_cell


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  arg = arg or 'cifar10'
  c = ml_collections.ConfigDict()
  # Seed of parameter/alpha init, data order and augmentation (reference: 2).
  c.seed = 2
  # Devices to use; 0 means every device of every host.
  c.num_devices = 0
  # Global batch size (over all devices), for both the weight and alpha halves.
  c.batch_size = 64
  # Search epochs; an epoch is one pass over the weight-training half.
  c.epochs = 50
  # If > 0, stop after this many steps (smoke runs, benchmarks).
  c.max_steps = 0
  # Log a progress line every this many steps.
  c.log_every_steps = 20
  # Write a checkpoint every this many steps (and at the end, and on SIGTERM).
  c.checkpoint_every_steps = 200
  # Checkpoints kept on disk.
  c.keep_checkpoints = 3
  # How depthwise convs are computed: 'shift' (fastest on CPU), 'grouped'
  # (one grouped lax.conv: compact graph, fast on GPU/TPU), 'loop'.
  c.depthwise_impl = 'shift'

  c.data = ml_collections.ConfigDict()
  # 'digits' (bundled, no download), 'cifar10' (extracted python batches) or
  # 'tfds:cifar10' (prepared TFDS directory).
  c.data.name = 'cifar10'
  # Directory of the data ('' for digits).
  c.data.data_dir = ''
  # [H, W, C] of the images; checked against the data.
  c.data.image_shape = (32, 32, 3)
  # Fraction of the training split that trains weights; the rest trains alpha.
  c.data.train_portion = 0.5
  # Random-crop zero padding in pixels (0 disables the crop).
  c.data.crop_padding = 4
  # Random horizontal flips.
  c.data.flip = True

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
  # r = fd_radius / ||grad_w' L_val|| for 'finite_difference'.
  c.search.fd_radius = 0.01

  c.optimizer = ml_collections.ConfigDict()
  # Weights: SGD, lr cosine per epoch from learning_rate to learning_rate_min.
  c.optimizer.learning_rate = 0.025
  c.optimizer.learning_rate_min = 0.001
  c.optimizer.momentum = 0.9
  # Coupled L2 weight decay (added to the gradient, as PyTorch SGD).
  c.optimizer.weight_decay = 3e-4
  # Global-norm gradient clip (0 disables).
  c.optimizer.grad_clip = 5.0

  c.arch_optimizer = ml_collections.ConfigDict()
  # alpha: Adam(lr, betas=(b1, b2)) with coupled L2 weight decay.
  c.arch_optimizer.learning_rate = 3e-4
  c.arch_optimizer.b1 = 0.5
  c.arch_optimizer.b2 = 0.999
  c.arch_optimizer.weight_decay = 1e-3

  if arg == 'cifar10':
    pass
  elif arg == 'cifar10_subset':
    c.data.data_dir = '../shared/data/cifar10/cifar-10-batches-py'
    c.model.channels, c.model.layers = 8, 5
    c.batch_size, c.epochs = 32, 1
    c.search.arch_mode = 'first_order'
  elif arg == 'digits':
    c.data.name, c.data.image_shape = 'digits', (8, 8, 1)
    c.data.crop_padding = 1
    c.data.flip = False  # Digits are not mirror-symmetric.
    c.model.channels, c.model.layers = 8, 5
    c.batch_size, c.epochs = 32, 2
    c.log_every_steps, c.checkpoint_every_steps = 5, 10
  elif arg == 'tiny':
    c.data.name, c.data.image_shape = 'digits', (8, 8, 1)
    c.data.crop_padding, c.data.flip = 1, False
    c.model.channels, c.model.layers = 4, 3
    c.search_space.primitives = ('none', 'max_pool_3x3', 'skip_connect',
                                 'sep_conv_3x3')
    c.search_space.steps = 2
    c.batch_size, c.epochs, c.max_steps = 8, 1, 2
    c.log_every_steps, c.checkpoint_every_steps = 1, 1
  else:
    raise ValueError(f'Unknown config variant {arg!r}; valid: cifar10, '
                     'cifar10_subset, digits, tiny.')
  return c
