"""DARTS (Liu et al., 2019): every op on every edge, weighted by
softmax(alpha). The bilevel step (`nasjax.bilevel`) gives alpha's
gradient: first order, exact second order or the paper's finite
difference."""

import dataclasses

import jax

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
