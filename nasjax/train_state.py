"""SearchState: everything a DARTS search step reads and writes, as one pytree.

Forked from `flax.training.train_state.TrainState`, as its docstring invites:
it holds two parameter sets with two optimisers (weights w with `tx`, alpha
with `arch_tx`), BatchNorm running statistics, the step counter and the base
PRNG key. The optax transformations are static fields (not leaves), so the
state can be donated, sharded and checkpointed as a plain pytree.

Synopsis:

  state = SearchState.create(params=..., batch_stats=..., alpha=...,
                             tx=weight_tx, arch_tx=arch_tx, rng=key)
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from nasjax import types


class SearchState(flax.struct.PyTreeNode):
  step: jax.Array
  params: types.Params
  batch_stats: types.BatchStats
  opt_state: optax.OptState
  alpha: types.Alpha
  arch_opt_state: optax.OptState
  rng: types.PRNGKey
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  arch_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, params, batch_stats, alpha, tx, arch_tx, rng):
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=batch_stats, opt_state=tx.init(params),
               alpha=dict(alpha), arch_opt_state=arch_tx.init(dict(alpha)),
               rng=rng, tx=tx, arch_tx=arch_tx)

  def checkpoint_items(self) -> dict[str, Any]:
    """The array leaves to checkpoint (everything but the static optimisers)."""
    return {k: getattr(self, k) for k in (
        'step', 'params', 'batch_stats', 'opt_state', 'alpha',
        'arch_opt_state', 'rng')}

  def replace_items(self, items: dict[str, Any]) -> 'SearchState':
    return self.replace(**items)
