"""Fields every run config shares (search and retraining), with comments."""

import ml_collections


def _run(c: ml_collections.ConfigDict, *, seed: int, batch_size: int,
         epochs: int, log_every_steps: int,
         checkpoint_every_steps: int) -> None:
  """The run-control fields of every config."""
  # Seed of initialisation, data order and augmentation.
  c.seed = seed
  # Devices to use; 0 means every device of every host.
  c.num_devices = 0
  # CPU runs only: split the CPU into this many XLA devices and shard the
  # batch over them; 0 = one per core (as many as divide the batch), 1 = no
  # split (the default). At 32x32 on 2 cores the split was 1.3x faster on
  # one kind of machine and 1.1-1.3x slower on another, and slower on 8x8
  # digits; and several XLA:CPU devices can, rarely, deadlock in a
  # collective (benchmarks/README.md, "Known problem"). Hence opt-in.
  c.cpu_devices = 1
  # Global training batch size (over all devices).
  c.batch_size = batch_size
  # Epochs; an epoch is one pass over the weight-training data.
  c.epochs = epochs
  # If > 0, stop after this many steps (smoke runs, benchmarks).
  c.max_steps = 0
  # Log a progress line every this many steps.
  c.log_every_steps = log_every_steps
  # Write a checkpoint every this many steps (and at the end, and on SIGTERM).
  c.checkpoint_every_steps = checkpoint_every_steps
  # Checkpoints kept on disk.
  c.keep_checkpoints = 3


def base(*, seed: int, batch_size: int, epochs: int, log_every_steps: int,
         checkpoint_every_steps: int) -> ml_collections.ConfigDict:
  """Run control, data and weight-optimiser fields, at the given values."""
  c = ml_collections.ConfigDict()
  _run(c, seed=seed, batch_size=batch_size, epochs=epochs,
       log_every_steps=log_every_steps,
       checkpoint_every_steps=checkpoint_every_steps)
  # How depthwise convs are computed: 'auto' (the platform's choice,
  # nasjax.platform: 'shift' on CPU, 'grouped' on GPU/TPU), 'shift' (fastest
  # measured on CPU), 'grouped' (one grouped lax.conv), 'loop'.
  c.depthwise_impl = 'auto'

  c.data = ml_collections.ConfigDict()
  # 'digits' (bundled, no download), 'cifar10' (extracted python batches) or
  # 'tfds:<name>' (prepared TFDS directory).
  c.data.name = 'cifar10'
  # Directory of the data ('' for digits).
  c.data.data_dir = ''
  # [H, W, C] of the images; checked against the data.
  c.data.image_shape = (32, 32, 3)
  # Random-crop zero padding in pixels (0 disables the crop).
  c.data.crop_padding = 4
  # Random horizontal flips.
  c.data.flip = True

  c.optimizer = ml_collections.ConfigDict()
  # Weights: SGD, lr cosine per epoch from learning_rate to learning_rate_min.
  c.optimizer.learning_rate = 0.025
  c.optimizer.learning_rate_min = 0.001
  c.optimizer.momentum = 0.9
  # Coupled L2 weight decay (added to the gradient, as PyTorch SGD).
  c.optimizer.weight_decay = 3e-4
  # Global-norm gradient clip (0 disables).
  c.optimizer.grad_clip = 5.0
  clip_eps(c)
  return c


def clip_eps(c: ml_collections.ConfigDict) -> None:
  """The clip's form, for the configs of PyTorch reference code."""
  # The clip scales by grad_clip / (norm + grad_clip_eps): 0 is optax's
  # clip_by_global_norm, 1e-6 PyTorch's clip_grad_norm_ (the DARTS
  # reference's; the two differ by about 1e-6 / norm when it clips).
  c.optimizer.grad_clip_eps = 0.0


def digits_data(c: ml_collections.ConfigDict) -> None:
  """The bundled 8x8 UCI digits: 1-pixel crops, no flips (not symmetric).

  One CPU device (the default): at 8x8 splitting the CPU costs more than it
  gains.
  """
  c.data.name, c.data.image_shape = 'digits', (8, 8, 1)
  c.data.crop_padding, c.data.flip = 1, False


def language_model(c: ml_collections.ConfigDict, *, seed: int,
                   batch_size: int, epochs: int, units: int,
                   dropout_e: float, log_every_steps: int,
                   checkpoint_every_steps: int) -> None:
  """The run, data and model fields of the recurrent configs (search and
  retraining), at the reference's dropouts."""
  # The cell family: recurrent cells in the language model.
  c.cell = 'recurrent'
  _run(c, seed=seed, batch_size=batch_size, epochs=epochs,
       log_every_steps=log_every_steps,
       checkpoint_every_steps=checkpoint_every_steps)
  # Mean window length in tokens.
  c.bptt = 35
  # Rows of the validation split when it is evaluated (reference: 10).
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
  c.model.units = units
  # Dropouts: cell outputs (locked), hidden-state mask, input mask,
  # embeddings (locked), embedding rows.
  c.model.dropout = 0.75
  c.model.dropout_h = 0.25
  c.model.dropout_x = 0.75
  c.model.dropout_i = 0.2
  c.model.dropout_e = dropout_e
  # Temporal activation regularisation (beta), training loss only.
  c.model.tar = 1e-3


def collapse_options(c: ml_collections.ConfigDict) -> None:
  """Published fixes of DARTS's collapse, for the searches that learn alpha
  by gradient."""
  c.beta_decay = ml_collections.ConfigDict()
  # beta-DARTS (Ye et al., CVPR 2022): add lambda * sum over cell types of
  # mean_edges logsumexp(alpha) to the architecture objective, lambda =
  # per_epoch * epoch (theirs: 0.5; 0 is off). `strategies.darts.BetaDecay`.
  c.beta_decay.per_epoch = 0.0


def hessian(c: ml_collections.ConfigDict) -> None:
  """The Hessian monitor and RobustDARTS's early stop (`nasjax.hessian`),
  for the searches that learn alpha by gradient."""
  c.hessian = ml_collections.ConfigDict()
  # After every `every_epochs` epochs (0: never), the Hessian of the
  # architecture loss in alpha on a fixed validation batch: its largest
  # eigenvalues and the smallest go into the history and TensorBoard
  # ('hessian_max_eigenvalue', ...) and hessian.png.
  c.hessian.every_epochs = 0
  # 'val': L_val(w, alpha) at the current weights (RobustDARTS's);
  # 'unrolled': L_val(w'(alpha), alpha), what exact second order descends.
  c.hessian.objective = 'val'
  # Lanczos steps (Hessian-vector products) per measurement; capped at
  # alpha's size, where the eigenvalues are exact.
  c.hessian.iterations = 20
  # DARTS-ES (Zela et al. 2020): stop when the dominant eigenvalue, averaged
  # over a centred window of `window` epochs, grew so that
  # mean(epoch i - k) / mean(epoch i) < ratio, and return the architecture
  # of epoch i - k (not before start_epoch). Needs every_epochs = 1.
  c.hessian.early_stop = False
  c.hessian.window = 5
  c.hessian.k = 5
  c.hessian.ratio = 0.75
  c.hessian.start_epoch = 0
