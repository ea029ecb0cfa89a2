"""Random-sampling one-shot search (Li & Talwalkar, 2019, "RSPS"; AutoDL's
RANDOM-NAS for NAS-Bench-201): the supernet's weights are trained with one
uniformly sampled op per edge per step, alpha is not learned, and at the end
sampled architectures are ranked by their accuracy on validation batches
with the shared weights (`nasjax.one_shot`)."""

import dataclasses

import jax

from nasjax import mixing as mixing_lib


@dataclasses.dataclass(frozen=True)
class RandomSampling:
  learns_alpha = False
  samples_cells = False

  def init_alpha(self, key, shapes):
    return mixing_lib.small_logits(key, shapes)

  def mixing(self, alpha, key, progress):
    del progress
    out = {}
    for i, (t, a) in enumerate(sorted(alpha.items())):
      index = jax.random.randint(jax.random.fold_in(key, i), a.shape[:1], 0,
                                 a.shape[1])
      out[t] = mixing_lib.one_hot(index, a.shape[1])
    return out
