"""DARTS (Liu et al., 2019): every op on every edge, weighted by
softmax(alpha). The bilevel step (`nasjax.bilevel`) gives alpha's
gradient: first order, exact second order or the paper's finite
difference.

`BetaDecay` is beta-DARTS's regulariser of alpha (Ye et al., CVPR 2022),
an option of the bilevel step (`arch_regularizer`) for the DARTS cell's own
search and the one-shot loop alike."""

import dataclasses

import jax
import jax.numpy as jnp

from nasjax import mixing as mixing_lib


@dataclasses.dataclass(frozen=True)
class Darts:
  learns_alpha = True
  samples_cells = False

  def init_alpha(self, key, shapes):
    return mixing_lib.small_logits(key, shapes)

  def mixing(self, alpha, key, progress):
    del key, progress
    return {t: mixing_lib.Mixing(jax.nn.softmax(a, axis=-1))
            for t, a in alpha.items()}


def beta_decay(alpha: dict) -> jax.Array:
  """beta-DARTS's penalty on alpha: for every cell type, the mean over its
  edges of logsumexp over the ops, summed over the cell types (their
  code's `mlc_loss` of alphas_normal plus that of alphas_reduce; NB201's one
  cell type alone). Its gradient is softmax(alpha) / edges: it pulls every
  edge's logits down together, keeping their softmax from saturating."""
  return sum(jnp.mean(jax.nn.logsumexp(a, axis=-1))
             for _, a in sorted(alpha.items()))


@dataclasses.dataclass(frozen=True)
class BetaDecay:
  """`(alpha, step) -> lambda * beta_decay(alpha)`, lambda = `per_epoch` *
  epoch (the epoch of `step`, from 0): beta-DARTS's linear schedule, 0.5
  per epoch in their searches (0 + 50 * epoch / 100). Added to the
  architecture objective of every arch mode; the beta-DARTS code adds it in
  first order only."""
  per_epoch: float
  steps_per_epoch: int

  def __call__(self, alpha, step):
    epoch = jnp.floor_divide(step, self.steps_per_epoch)
    return self.per_epoch * epoch * beta_decay(alpha)


def beta_decay_of(config, steps_per_epoch: int) -> BetaDecay | None:
  """The `BetaDecay` a search config's `beta_decay` section asks for, or
  None when it is off."""
  per_epoch = config.beta_decay.per_epoch
  return BetaDecay(per_epoch, steps_per_epoch) if per_epoch else None
