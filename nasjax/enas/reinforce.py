"""REINFORCE for the ENAS controller, with optax.

One update scores N sampled children (the reference aggregates 10 in micro,
20 in macro) and applies the mean of their gradients:

  reward_k    = score_k + entropy_weight * entropy_k   (entropy in the
                reward, not the loss, as the reference does)
  baseline_k  = baseline_{k-1} - (1 - decay) (baseline_{k-1} - reward_k)
  advantage_k = reward_k - baseline_k
  loss        = mean_k(-log p(arc_k) * advantage_k)
                + skip_weight * mean_k(skip_penalty_k)        (macro)

Order: the EMA baseline is updated with a child's reward first and the
advantage taken against the updated baseline (the reference's control
dependency), so advantage_k = decay * (reward_k - baseline_{k-1}); the
children of one update are folded into the baseline in their order.

The optimiser is the reference's: Adam with b1 = 0 and eps = 1e-3, constant
learning rate (0.0035 micro, 0.001 macro), no clipping, no L2.

  state = create(params, adam(0.0035))
  state, metrics = update(state, arcs, scores, score=score, tx=tx)
"""

from typing import Callable

import flax
import jax
import jax.numpy as jnp
import optax


def adam(learning_rate: float, b1: float = 0.0, eps: float = 1e-3
         ) -> optax.GradientTransformation:
  """The reference's controller optimiser (the CIFAR code's b1 = 0 and
  eps = 1e-3 by default; the PTB code's is TF's default Adam, b1 = 0.9,
  eps = 1e-8)."""
  return optax.adam(learning_rate, b1=b1, eps=eps)


@flax.struct.dataclass
class ControllerState:
  params: dict
  opt_state: optax.OptState
  baseline: jax.Array   # EMA of the reward, starts at 0 (reference)
  step: jax.Array


def create(params, tx: optax.GradientTransformation) -> ControllerState:
  return ControllerState(params, tx.init(params), jnp.zeros(()),
                         jnp.zeros((), jnp.int32))


def baselines(baseline, rewards, decay: float):
  """(final baseline, per-child baselines after each child's update)."""
  def step(b, r):
    b = b - (1.0 - decay) * (b - r)
    return b, b
  return jax.lax.scan(step, baseline, rewards)


def update(state: ControllerState, arcs, scores, *,
           score: Callable, tx: optax.GradientTransformation,
           entropy_weight: float = 1e-4, decay: float = 0.99,
           skip_weight: float = 0.0):
  """One controller update from N children.

  Args:
    state: the controller's state.
    arcs: the N children's arcs, stacked (micro [N, 2, 4B]; macro a dict of
      [N, ...]).
    scores: [N] each child's task reward on its validation batch: its
      accuracy (images) or 80 / perplexity (language model).
    score: `(params, arc) -> controller.Sample` (teacher forcing), e.g.
      `functools.partial(controller.log_prob, space=..., config=...)`.
    tx: the optimiser (`adam`).
    entropy_weight, decay, skip_weight: the reference's 1e-4, 0.99, and 0.8
      for macro (0 for micro).

  Returns:
    (new state, metrics: mean reward, baseline, advantage, entropy, log p,
    skip penalty and skips, loss).
  """
  scores = jnp.asarray(scores, jnp.float32)

  def loss_fn(params):
    s = jax.vmap(score, in_axes=(None, 0))(params, arcs)
    rewards = scores + entropy_weight * jax.lax.stop_gradient(s.entropy)
    final, per_child = baselines(state.baseline, rewards, decay)
    advantage = jax.lax.stop_gradient(rewards - per_child)
    loss = (-jnp.mean(s.log_prob * advantage) +
            skip_weight * jnp.mean(s.skip_penalty))
    return loss, (final, rewards, advantage, s)

  (loss, (final, rewards, advantage, s)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new = state.replace(params=params, opt_state=opt_state, baseline=final,
                      step=state.step + 1)
  metrics = {'reward': rewards.mean(), 'baseline': final,
             'advantage': advantage.mean(), 'entropy': s.entropy.mean(),
             'log_prob': s.log_prob.mean(),
             'skip_penalty': s.skip_penalty.mean(),
             'skips': s.skips.astype(jnp.float32).mean(), 'loss': loss}
  return new, metrics
