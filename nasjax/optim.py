"""The optimisers of DARTS (search and retraining), as optax transformations.

* weights: SGD with momentum 0.9 and coupled weight decay (PyTorch's
  `SGD(weight_decay=...)`: the decay is added to the gradient before the
  momentum buffer), gradient norm clipped first; learning rate cosine-annealed
  per *epoch* from `lr` to `lr_min`, as the reference's per-epoch scheduler
  (retraining: the same with `lr_min` 0 on CIFAR, `exponential_per_epoch` on
  ImageNet).
* alpha: Adam with coupled L2 weight decay (PyTorch `Adam(weight_decay=...)`),
  betas (0.5, 0.999), eps 1e-8.

Synopsis:

  schedule = cosine_per_epoch(0.025, 0.001, epochs=50, steps_per_epoch=391)
  tx = weight_optimizer(schedule, momentum=0.9, weight_decay=3e-4, clip=5.0)
  arch_tx = arch_optimizer(3e-4, b1=0.5, b2=0.999, weight_decay=1e-3)
"""

import jax
import jax.numpy as jnp
import optax


def cosine_per_epoch(lr: float, lr_min: float, *, epochs: int,
                     steps_per_epoch: int) -> optax.Schedule:
  """lr(step) = lr_min + (lr - lr_min)(1 + cos(pi * epoch / epochs)) / 2."""

  def schedule(step):
    epoch = jnp.floor_divide(step, steps_per_epoch)
    return lr_min + 0.5 * (lr - lr_min) * (1 + jnp.cos(jnp.pi * epoch / epochs))

  return schedule


def clip_by_global_norm(max_norm: float, eps: float = 0.0
                        ) -> optax.GradientTransformation:
  """Scales the gradient by min(1, max_norm / (norm + eps)), norm its global
  L2 norm: eps = 0 is `optax.clip_by_global_norm`, eps = 1e-6 PyTorch's
  `clip_grad_norm_` (which the DARTS reference calls)."""
  if not eps:
    return optax.clip_by_global_norm(max_norm)

  def update(updates, state, params=None):
    del params
    norm = optax.global_norm(updates)
    scale = jnp.minimum(1.0, max_norm / (norm + eps))
    return jax.tree.map(lambda g: (g * scale).astype(g.dtype), updates), state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)


def weight_optimizer(learning_rate: optax.ScalarOrSchedule, *, momentum: float,
                     weight_decay: float, clip: float | None,
                     clip_eps: float = 0.0, nesterov: bool = False
                     ) -> optax.GradientTransformation:
  """SGD with coupled weight decay after a global-norm clip (`clip` None: no
  clip; `clip_eps` as `clip_by_global_norm`'s `eps`); `nesterov`: PyTorch's
  Nesterov momentum (update g + m * buf, buf = m * buf + g)."""
  parts = [] if clip is None else [clip_by_global_norm(clip, clip_eps)]
  parts += [optax.add_decayed_weights(weight_decay),
            optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)]
  return optax.chain(*parts)


def arch_optimizer(learning_rate: float, *, b1: float, b2: float,
                   weight_decay: float, eps: float = 1e-8
                   ) -> optax.GradientTransformation:
  return optax.chain(optax.add_decayed_weights(weight_decay),
                     optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))


def exponential_per_epoch(lr: float, gamma: float, *,
                          steps_per_epoch: int) -> optax.Schedule:
  """lr(step) = lr * gamma ** epoch (PyTorch `StepLR(1, gamma)`, ImageNet)."""

  def schedule(step):
    return lr * gamma ** jnp.floor_divide(step, steps_per_epoch)

  return schedule
