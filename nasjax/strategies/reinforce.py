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
learning rate (0.0035 micro, 0.001 macro), no clipping, no L2, in TensorFlow
1's form (`scale_by_tf1_adam`): epsilon is added to the uncorrected
sqrt(v), so with eps = 1e-3 and gradients near 1e-3 the first update is
about 16x smaller than `optax.adam`'s (2x at update 100, the same by about
4,500).

  state = create(params, adam(0.0035))
  state, metrics = update(state, arcs, scores, score=score, tx=tx)
"""

from typing import Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nasjax import parallel


ADAM_FORMS = ('tf1', 'optax')


class Tf1AdamState(NamedTuple):
  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates


def scale_by_tf1_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                      ) -> optax.GradientTransformation:
  """TensorFlow 1's `tf.train.AdamOptimizer` direction (before the learning
  rate): at step t = 1, 2, ...

    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
    update = sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

  i.e. optax's Adam with eps replaced by eps / sqrt(1 - b2^t) (Kingma and
  Ba's "epsilon hat", section 2)."""

  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return Tf1AdamState(jnp.zeros((), jnp.int32), zeros(), zeros())

  def update(grads, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g),
                      state.nu, grads)
    count = state.count + 1
    t = count.astype(jnp.result_type(float))  # float64 under x64.
    rate = jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    out = jax.tree.map(lambda m, v: rate * m / (jnp.sqrt(v) + eps), mu, nu)
    return out, Tf1AdamState(count, mu, nu)

  return optax.GradientTransformation(init, update)


def adam(learning_rate: float, b1: float = 0.0, eps: float = 1e-3,
         form: str = 'tf1') -> optax.GradientTransformation:
  """The reference's controller optimiser (the CIFAR code's b1 = 0 and
  eps = 1e-3 by default; the PTB code's is TF's default Adam, b1 = 0.9,
  eps = 1e-8), in TensorFlow 1's form ('tf1', the reference's) or
  optax's ('optax': eps added to the bias-corrected sqrt(v))."""
  if form == 'optax':
    return optax.adam(learning_rate, b1=b1, eps=eps)
  if form != 'tf1':
    raise ValueError(f'Unknown Adam form {form!r}; valid: {ADAM_FORMS}.')
  return optax.chain(scale_by_tf1_adam(b1=b1, eps=eps),
                     optax.scale_by_learning_rate(learning_rate))


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


def step(params, opt_state, baseline, arcs, scores, *, score: Callable,
         tx: optax.GradientTransformation, entropy_weight: float = 1e-4,
         decay: float = 0.99, skip_weight: float = 0.0):
  """One controller update from N children.

  Args:
    params, opt_state, baseline: the controller's weights, its optimiser's
      state and the EMA of the reward.
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
    (params, opt_state, baseline, metrics: mean reward, baseline,
    advantage, entropy, log p, skip penalty and skips, loss).
  """
  scores = jnp.asarray(scores, jnp.float32)

  def loss_fn(params):
    s = jax.vmap(score, in_axes=(None, 0))(params, arcs)
    rewards = scores + entropy_weight * jax.lax.stop_gradient(s.entropy)
    final, per_child = baselines(baseline, rewards, decay)
    advantage = jax.lax.stop_gradient(rewards - per_child)
    loss = (-jnp.mean(s.log_prob * advantage) +
            skip_weight * jnp.mean(s.skip_penalty))
    return loss, (final, rewards, advantage, s)

  (loss, (final, rewards, advantage, s)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  metrics = {'reward': rewards.mean(), 'baseline': final,
             'advantage': advantage.mean(), 'entropy': s.entropy.mean(),
             'log_prob': s.log_prob.mean(),
             'skip_penalty': s.skip_penalty.mean(),
             'skips': s.skips.astype(jnp.float32).mean(), 'loss': loss}
  return params, opt_state, final, metrics


def update(state: ControllerState, arcs, scores, **kwargs):
  """`step` on a `ControllerState`: (new state, metrics)."""
  params, opt_state, baseline, metrics = step(
      state.params, state.opt_state, state.baseline, arcs, scores, **kwargs)
  return state.replace(params=params, opt_state=opt_state, baseline=baseline,
                       step=state.step + 1), metrics


def phase_means(updates: list[dict], epoch: int, train_steps: int,
                     writer=None) -> dict[str, float]:
  """The epoch's means of a controller phase's update metrics, as
  'controller/<name>'; each update's metrics also go to TensorBoard (step:
  the update's number from 1)."""
  updates = parallel.to_host(updates)
  for k, u in enumerate(updates):
    for name, v in u.items():
      if name != 'finite' and writer is not None:
        writer.add_scalar(f'controller/{name}', float(v),
                          epoch * train_steps + k + 1)
  if not updates:
    return {}
  return {f'controller/{name}': float(np.mean([u[name] for u in updates]))
          for name in updates[0] if name != 'finite'}
