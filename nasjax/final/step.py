"""Training and evaluation steps for a discrete network, as pure functions.

The loss is the reference's: cross-entropy of the main logits (with label
smoothing on ImageNet) plus `aux_weight` times that of the auxiliary head.
Drop-path probability follows the reference's linear ramp,
`drop_path_prob * epoch / epochs`, computed inside the step from the step
counter, so it never retraces. A non-finite loss leaves the state unchanged
and is reported as `metrics['finite']` (the loop then stops).

Synopsis:

  step = functools.partial(train_step, model=net, preprocess=prep,
                           drop_path=drop_path_schedule, aux_weight=0.4)
  state, metrics = jax.jit(step, donate_argnums=0)(state, batch)
  sums = eval_step(state, batch_with_mask, model=net, preprocess=prep)
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from nasjax import train_state
from nasjax import types
from nasjax.train_state import TrainState

Preprocess = Callable[[jax.Array, jax.Array, bool], jax.Array]


def linear_drop_path(drop_path_prob: float, *, epochs: int,
                     steps_per_epoch: int) -> Callable[[jax.Array], jax.Array]:
  """step -> drop_path_prob * epoch / epochs (the reference's ramp)."""

  def schedule(step):
    epoch = jnp.floor_divide(step, steps_per_epoch)
    return drop_path_prob * epoch / epochs

  return schedule


def _cross_entropy(logits, labels, smoothing):
  targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  if smoothing:
    targets = optax.smooth_labels(targets, smoothing)
  return optax.softmax_cross_entropy(logits, targets).mean()


def loss_with_aux(logits, aux, labels, aux_weight: float,
                  label_smoothing: float = 0.0):
  """(total, main): cross-entropy of the logits, plus `aux_weight` times the
  auxiliary head's (when there is one)."""
  loss = _cross_entropy(logits, labels, label_smoothing)
  if aux is None or not aux_weight:
    return loss, loss
  return loss + aux_weight * _cross_entropy(aux, labels, label_smoothing), loss


def train_step(state: TrainState, batch: types.Batch, *, model,
               preprocess: Preprocess,
               drop_path: Callable[[jax.Array], jax.Array],
               aux_weight: float = 0.4, label_smoothing: float = 0.0):
  """One SGD step on `batch`. Returns (state, metrics)."""
  rng = jax.random.fold_in(state.rng, state.step)
  k_aug, k_drop = jax.random.split(rng)
  x, y = preprocess(batch['image'], k_aug, True), batch['label']

  def loss_fn(params):
    (logits, aux), updates = model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, x, train=True,
        drop_path_prob=drop_path(state.step),
        rngs={'drop_path': k_drop, 'dropout': jax.random.fold_in(k_drop, 1)},
        mutable=['batch_stats'])
    total, loss = loss_with_aux(logits, aux, y, aux_weight, label_smoothing)
    return total, (loss, logits, updates['batch_stats'])

  (total, (loss, logits, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  metrics = {'loss': loss, 'total_loss': total,
             'accuracy': jnp.mean(jnp.argmax(logits, -1) == y),
             'drop_path_prob': drop_path(state.step)}
  return train_state.apply_gradients(state, grads, batch_stats, metrics)


def eval_step(state: TrainState, batch: types.Batch, *, model,
              preprocess: Preprocess):
  """Inference-mode sums over a batch whose `mask` marks real examples.

  Returns {'loss_sum', 'correct', 'count'}; add them up over batches.
  """
  x = preprocess(batch['image'], state.rng, False)
  logits = model.apply({'params': state.params,
                        'batch_stats': state.batch_stats}, x, train=False)
  y, mask = batch['label'], batch['mask']
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  return {'loss_sum': jnp.sum(losses * mask),
          'correct': jnp.sum((jnp.argmax(logits, -1) == y) * mask),
          'count': jnp.sum(mask)}
