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

A strategy that samples architectures by a sequence of decisions (ENAS's
controller) reads them from the space's `decisions()`: `OpSequence` (one op
per edge: NAS-Bench-201) or a space's own (the DARTS cell: per node two
inputs and two ops, ENAS's micro decisions), each with `mixing(arc)`, the
traceable mixing of a sampled arc; the space's `from_decisions(arc)` is the
architecture of one.
"""

import dataclasses

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


@dataclasses.dataclass(frozen=True)
class OpSequence:
  """Decisions of one op per edge, cell types in sorted order, every type
  with the same number of ops (a controller's view of NAS-Bench-201).

  Attributes:
    edges: ((cell type, number of edges), ...).
    num_ops: ops per edge.
  """
  edges: tuple[tuple[str, int], ...]
  num_ops: int
  controller_kind = 'sequence'  # Which ENAS controller samples it.

  @classmethod
  def of(cls, alpha_shapes: dict[str, tuple[int, int]]) -> 'OpSequence':
    """From a `OneShotSpace`'s `alpha_shapes()`."""
    ops = {k for _, k in alpha_shapes.values()}
    if len(ops) != 1:
      raise ValueError('The controller needs the same number of ops on every '
                       f'cell type, got {alpha_shapes}.')
    return cls(tuple((t, e) for t, (e, _) in sorted(alpha_shapes.items())),
               ops.pop())

  @property
  def ops(self):
    return range(self.num_ops)

  @property
  def num_edges(self) -> int:
    return sum(e for _, e in self.edges)

  def split(self, arc) -> dict:
    """The arc [..., E total] as {cell type: [..., E]}."""
    out, start = {}, 0
    for t, e in self.edges:
      out[t] = arc[..., start:start + e]
      start += e
    return out

  def mixing(self, arc) -> dict[str, Mixing]:
    """The one-hot mixing of an arc [E total]."""
    return {t: one_hot(i, self.num_ops) for t, i in self.split(arc).items()}


class OneShotSpace(Protocol):
  """What a space gives a one-shot strategy and the one-shot loop."""
  name: str

  def alpha_shapes(self) -> dict[str, tuple[int, int]]: ...
  def supernet(self, num_classes: int, model_config) -> Any: ...
  def from_alpha(self, alpha: dict[str, np.ndarray]) -> Any: ...
  def random_arch(self, rng: np.random.Generator) -> Any: ...
  def arch_mixing(self, arch) -> dict[str, Mixing]: ...
  def decisions(self) -> Any: ...
  def from_decisions(self, arc) -> Any: ...
  def to_string(self, arch) -> str: ...
