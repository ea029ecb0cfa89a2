"""GDAS (Dong & Yang, CVPR 2019; the NAS-Bench-201 version of AutoDL's
`TinyNetworkGDAS`): one op per edge, sampled by Gumbel-max from alpha, with
the Gumbel-softmax gradient.

Per network pass, for every edge e (one sample shared by every cell of the
network, as AutoDL's):

  g_k    ~ Gumbel(0, 1)
  p      = softmax((log_softmax(alpha_e) + g) / tau)
  k*     = argmax_k p_k
  h      = one_hot(k*) - stop_gradient(p) + p      (value: one-hot)

and the edge computes h[k*] * op_k*(x): only the sampled op runs. The
temperature falls linearly by epoch, tau = tau_max - (tau_max - tau_min) *
epoch / (epochs - 1), 10 to 0.1 in the NB201 runs. The derived cell is the
argmax of alpha (`none` included, as in the NB201 searches).
"""

import dataclasses

import jax
import jax.numpy as jnp

from nasjax import mixing as mixing_lib


def gumbel_hard(logits, key, tau):
  """(h, index): the straight-through hard Gumbel-softmax sample of every
  row of `logits` [E, K] at temperature `tau`."""
  g = jax.random.gumbel(key, logits.shape, logits.dtype)
  p = jax.nn.softmax((jax.nn.log_softmax(logits, -1) + g) / tau, -1)
  index = jnp.argmax(p, -1)
  one_hot = jax.nn.one_hot(index, logits.shape[-1], dtype=p.dtype)
  return one_hot - jax.lax.stop_gradient(p) + p, index


@dataclasses.dataclass(frozen=True)
class Gdas:
  """Attributes: tau_max, tau_min: the temperature at the first and the
  last epoch."""
  tau_max: float = 10.0
  tau_min: float = 0.1
  learns_alpha = True
  samples_cells = False

  def init_alpha(self, key, shapes):
    return mixing_lib.small_logits(key, shapes)

  def tau(self, progress):
    return self.tau_max - (self.tau_max - self.tau_min) * progress

  def mixing(self, alpha, key, progress):
    out = {}
    for i, (t, a) in enumerate(sorted(alpha.items())):
      h, index = gumbel_hard(a, jax.random.fold_in(key, i), self.tau(progress))
      out[t] = mixing_lib.Mixing(h, index)
    return out
