"""SearchState and TrainState: everything a step reads and writes, as one pytree.

`SearchState` is for a DARTS search, `TrainState` for training a discrete
network from scratch (weights only).

Forked from `flax.training.train_state.TrainState`, as its docstring invites:
it holds two parameter sets with two optimisers (weights w with `tx`, alpha
with `arch_tx`), BatchNorm running statistics, the step counter and the base
PRNG key. The optax transformations are static fields (not leaves), so the
state can be donated, sharded and checkpointed as a plain pytree.

Synopsis:

  state = TrainState.create(params=..., batch_stats=..., tx=tx, rng=key)
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
  # What the data streams carry from one step to the next, by stream
  # ('train', 'val'): a language model's hidden states. {} for images.
  carry: dict[str, Any]
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  arch_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, params, batch_stats, alpha, tx, arch_tx, rng,
             carry=None):
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=batch_stats, opt_state=tx.init(params),
               alpha=dict(alpha), arch_opt_state=arch_tx.init(dict(alpha)),
               rng=rng, carry=dict(carry or {}), tx=tx, arch_tx=arch_tx)

  def checkpoint_items(self) -> dict[str, Any]:
    """The array leaves to checkpoint (everything but the static optimisers;
    the carry only when there is one)."""
    keys = ('step', 'params', 'batch_stats', 'opt_state', 'alpha',
            'arch_opt_state', 'rng') + (('carry',) if self.carry else ())
    return {k: getattr(self, k) for k in keys}

  def replace_items(self, items: dict[str, Any]) -> 'SearchState':
    return self.replace(**items)


class TrainState(flax.struct.PyTreeNode):
  """What a retraining step reads and writes: one parameter set, one optimiser."""
  step: jax.Array
  params: types.Params
  batch_stats: types.BatchStats
  opt_state: optax.OptState
  rng: types.PRNGKey
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, params, batch_stats, tx, rng):
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=batch_stats, opt_state=tx.init(params), rng=rng,
               tx=tx)

  def checkpoint_items(self) -> dict[str, Any]:
    return {k: getattr(self, k) for k in (
        'step', 'params', 'batch_stats', 'opt_state', 'rng')}

  def replace_items(self, items: dict[str, Any]) -> 'TrainState':
    return self.replace(**items)


def apply_gradients(state, grads, batch_stats, metrics: dict):
  """One optimiser step of `state.params` (any state with step, params,
  batch_stats, opt_state and tx): step + 1, the new BatchNorm statistics,
  `grad_norm` added to the metrics, and the NaN guard (`keep_if_finite`).
  Returns (state, metrics)."""
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  new = state.replace(step=state.step + 1,
                      params=optax.apply_updates(state.params, updates),
                      batch_stats=batch_stats, opt_state=opt_state)
  return keep_if_finite(state, new,
                        {**metrics, 'grad_norm': optax.global_norm(grads)})


def _all_finite(tree) -> jax.Array:
  """True iff every floating-point leaf of `tree` is finite (one scalar)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in map(jnp.asarray,
                                                   jax.tree.leaves(tree))
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def keep_if_finite(old, new, metrics: dict):
  """`new` if it and every metric are finite, else `old`; adds 'finite'.

  The NaN guard of every step. It looks at every floating-point metric (the
  losses and the gradient norms the steps report, so a finite loss with a
  non-finite weight gradient or hypergradient is caught) and at every
  floating-point leaf of the new state (weights, alpha, BatchNorm
  statistics, optimiser states: whatever would be written), so nothing
  non-finite reaches the state, nor, through the loop, a checkpoint. The
  check is one reduction over the state; the select reads both states.
  """
  finite = _all_finite(metrics) & _all_finite(new)
  state = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  return state, {**metrics, 'finite': finite}
