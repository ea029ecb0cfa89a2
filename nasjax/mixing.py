"""The protocol between a one-shot search strategy and a search space.

A space's weight-sharing network (supernet) does not know how a strategy
relaxes or samples the architecture: it takes a `Mixing` per cell type, and
a strategy turns its architecture parameters alpha (`{cell type: [E, K]}`
logits, one row per edge, one column per op) into one:

  DARTS               Mixing(softmax(alpha))             every op, weighted
  GDAS                Mixing(hard one-hot, index)        one op per edge, the
                                                         soft gradient
  random sampling     Mixing(one-hot, uniform index)     one op per edge

A space supplies (`OneShotSpace`) the shapes of alpha, its supernet, the
architecture alpha derives, uniformly random architectures and the mixing
of one architecture; a strategy supplies (`nasjax.strategies`) the mixing
of a step. Neither imports the other.
"""

from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np


class Mixing(NamedTuple):
  """How each edge of a cell type mixes its ops.

  Attributes:
    weights: [E, K], the weight of op k on edge e.
    index: [E] int, the one op each edge computes (`weights[e, index[e]]`
      times it), or None: every op, weighted.
  """
  weights: jax.Array
  index: Any = None


def one_hot(index, num_ops: int) -> Mixing:
  """The mixing of one architecture: each edge computes its op, weight 1."""
  index = jnp.asarray(index, jnp.int32)
  return Mixing(jax.nn.one_hot(index, num_ops), index)


def small_logits(key, shapes: dict[str, tuple[int, int]]) -> dict:
  """alpha for every cell type: 1e-3 * N(0, 1) logits (DARTS's start)."""
  return {t: 1e-3 * jax.random.normal(jax.random.fold_in(key, i), s)
          for i, (t, s) in enumerate(sorted(shapes.items()))}


class OneShotSpace(Protocol):
  """What a space gives a one-shot strategy and the one-shot loop."""
  name: str

  def alpha_shapes(self) -> dict[str, tuple[int, int]]: ...
  def supernet(self, num_classes: int, model_config) -> Any: ...
  def from_alpha(self, alpha: dict[str, np.ndarray]) -> Any: ...
  def random_arch(self, rng: np.random.Generator) -> Any: ...
  def arch_index(self, arch) -> dict[str, np.ndarray]: ...
  def to_string(self, arch) -> str: ...
