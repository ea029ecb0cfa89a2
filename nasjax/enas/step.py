"""The ENAS search steps, as pure functions of one state pytree.

An ENAS search alternates two phases (reference `src/cifar10/main.py`):

* `child_step(state, batch)`: the controller samples one architecture
  (inside the step, from the step's key), and the shared weights take one
  SGD step on the training batch with it. The arc is a traced array, so the
  step compiles once for every architecture.
* `controller_step(state, batches)`: the controller samples N children
  (`vmap`), each is scored on its own validation minibatch (`lax.map`:
  one child after another, each running only its sampled ops), and one
  REINFORCE update (`reinforce.update`) uses the N accuracies.

The child optimiser is the reference's: L2 in the loss (its gradient 2 l2 w
added before the clip), a global-norm clip that really clips (the
reference's is a no-op), SGD with Nesterov momentum 0.9, and the cosine
learning rate with warm restarts per epoch (`sgdr`).

Synopsis:

  state = EnasState.create(params=..., batch_stats=..., controller=...,
                           tx=child_optimizer(...), controller_tx=..., rng=k)
  state, metrics = jax.jit(functools.partial(child_step, **bound))(state, b)
  state, metrics = jax.jit(functools.partial(controller_step, **bound))(
      state, {'image': [N, B, H, W, C], 'label': [N, B]})
"""

import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from nasjax import train_state
from nasjax import types
from nasjax.darts import rnn
from nasjax import bilevel as darts_step
from nasjax.strategies import controller as controller_lib
from nasjax.strategies import reinforce
from nasjax.final import step as final_step


class EnasState(flax.struct.PyTreeNode):
  """The shared child's weights and optimiser, and the controller's state."""
  step: jax.Array
  params: types.Params
  batch_stats: types.BatchStats
  opt_state: optax.OptState
  controller: reinforce.ControllerState
  rng: types.PRNGKey
  # The language model's hidden state by stream ({'train': [rows, units]});
  # {} for images (as `SearchState.carry`).
  carry: dict[str, Any]
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  controller_tx: optax.GradientTransformation = flax.struct.field(
      pytree_node=False)

  @classmethod
  def create(cls, *, params, batch_stats, controller_params, tx,
             controller_tx, rng, carry=None):
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=batch_stats, opt_state=tx.init(params),
               controller=reinforce.create(controller_params, controller_tx),
               rng=rng, carry=dict(carry or {}), tx=tx,
               controller_tx=controller_tx)

  def checkpoint_items(self) -> dict[str, Any]:
    keys = ('step', 'params', 'batch_stats', 'opt_state', 'controller',
            'rng') + (('carry',) if self.carry else ())
    return {k: getattr(self, k) for k in keys}

  def replace_items(self, items: dict[str, Any]) -> 'EnasState':
    return self.replace(**items)


def sgdr(lr_max: float, lr_min: float, *, t0: int, t_mul: int,
         steps_per_epoch: int, max_restarts: int = 40) -> optax.Schedule:
  """Cosine per epoch from lr_max to lr_min, restarting after t0, t0 t_mul,
  t0 t_mul^2, ... epochs (restarts at epochs 10, 30, 70, 150, 310, 630 for
  t0 = 10, t_mul = 2; the reference's `lr_cosine`)."""
  lengths = [t0 * t_mul ** k for k in range(max_restarts)]
  starts = jnp.cumsum(jnp.asarray([0] + lengths[:-1], jnp.float32))
  lengths = jnp.asarray(lengths, jnp.float32)

  def schedule(step):
    epoch = jnp.floor_divide(step, steps_per_epoch).astype(jnp.float32)
    k = jnp.sum(starts <= epoch) - 1
    rate = (epoch - starts[k]) / lengths[k]
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + jnp.cos(jnp.pi * rate))

  return schedule


def child_optimizer(schedule: optax.Schedule, *, l2: float, clip: float,
                    momentum: float = 0.9) -> optax.GradientTransformation:
  """L2 gradient (2 l2 w: the loss carries l2 * sum w^2), clip, Nesterov."""
  parts = [optax.add_decayed_weights(2.0 * l2)]
  if clip:
    parts.append(optax.clip_by_global_norm(clip))
  parts.append(optax.sgd(schedule, momentum=momentum, nesterov=True))
  return optax.chain(*parts)


def drop_path_ramp(drop_path_keep: float | None, total_steps: int
                   ) -> Callable[[jax.Array], jax.Array] | None:
  """step -> drop rate at the last cell, ramped in over training
  (reference: keep = 1 - min(1, (step + 1) / total) (1 - p) at the last
  cell, scaled down with depth by the child)."""
  if drop_path_keep is None or drop_path_keep >= 1.0:
    return None
  def rate(step):
    ratio = jnp.minimum(1.0, (step + 1) / total_steps)
    return ratio * (1.0 - drop_path_keep)
  return rate


def _keys(state):
  """Independent streams: child steps by state.step, controller updates by
  its own step counter."""
  k_child, k_ctrl = jax.random.split(state.rng)
  return (jax.random.fold_in(k_child, state.step),
          jax.random.fold_in(k_ctrl, state.controller.step))


def child_step(state: EnasState, batch: types.Batch, *, model, space,
               preprocess, controller_config, aux_weight: float = 0.4,
               drop_rate: Callable | None = None):
  """One shared-weight step on a training batch, with a sampled arc."""
  k_arc = jax.random.fold_in(_keys(state)[0], 1)
  arc = controller_lib.sample(state.controller.params, k_arc, space=space,
                              config=controller_config).arc
  return train_step(state, batch, arc, model=model, preprocess=preprocess,
                    aux_weight=aux_weight, drop_rate=drop_rate)


def train_step(state, batch: types.Batch, arc, *, model, preprocess,
               aux_weight: float = 0.4, drop_rate: Callable | None = None):
  """One SGD step of the child on `arc` (traced; None for a fixed network,
  whose `model` holds its arc). Returns (state, metrics)."""
  k_aug, k_drop, k_path = jax.random.split(_keys(state)[0], 3)
  x, y = preprocess(batch['image'], k_aug, True), batch['label']
  rate = None if drop_rate is None else drop_rate(state.step)

  def loss_fn(params):
    (logits, aux), updates = model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, x, arc,
        train=True, drop_rate=rate,
        rngs={'dropout': k_drop, 'drop_path': k_path},
        mutable=['batch_stats'])
    total, loss = final_step.loss_with_aux(logits, aux, y, aux_weight)
    return total, (loss, logits, updates.get('batch_stats', {}))

  (total, (loss, logits, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  metrics = {'loss': loss, 'total_loss': total,
             'accuracy': jnp.mean(jnp.argmax(logits, -1) == y)}
  return train_state.apply_gradients(state, grads, batch_stats, metrics)


def correct(params, batch_stats, arc, images, labels, mask=None, *, model,
            preprocess):
  """Number of correctly classified examples of one batch (those `mask`
  marks, when given), for `arc`.

  In inference mode: the macro child normalises with its running statistics
  (reference `build_valid_rl`), the micro child with the batch's (it has no
  others: reference).
  """
  x = preprocess(images, jax.random.key(0), False)
  out = model.apply({'params': params, 'batch_stats': batch_stats}, x, arc,
                    train=False)
  hit = jnp.argmax(out, -1) == labels
  return jnp.sum(hit if mask is None else hit * mask)


def controller_step(state: EnasState, batches: types.Batch, *, model, space,
                    preprocess, controller_config, entropy_weight: float,
                    baseline_decay: float, skip_weight: float):
  """One REINFORCE update from N children, each on its own batch.

  `batches`: {'image': [N, B, ...], 'label': [N, B]}.
  """
  n, size = batches['label'].shape
  keys = jax.random.split(_keys(state)[1], n)
  cfg = controller_config
  arcs = jax.vmap(functools.partial(
      controller_lib.sample, space=space, config=cfg),
                  in_axes=(None, 0))(state.controller.params, keys).arc
  score = functools.partial(correct, model=model, preprocess=preprocess)
  hits = jax.lax.map(
      lambda a: score(state.params, state.batch_stats, a[0], a[1], a[2]),
      (arcs, batches['image'], batches['label']))
  accuracy = hits.astype(jnp.float32) / size
  ctrl, metrics = reinforce.update(
      state.controller, arcs, accuracy,
      score=functools.partial(controller_lib.log_prob, space=space,
                              config=cfg),
      tx=state.controller_tx, entropy_weight=entropy_weight,
      decay=baseline_decay, skip_weight=skip_weight)
  metrics = {**metrics, 'accuracy': accuracy.mean(),
             'max_accuracy': accuracy.max()}
  new = state.replace(controller=ctrl)
  return train_state.keep_if_finite(state, new, metrics)


def score_arcs(state: EnasState, arcs, batches: types.Batch, *, model,
               preprocess):
  """[N] accuracy of each of N arcs over the same K batches (derive).

  `batches`: {'image': [K, B, ...], 'label': [K, B], 'mask': [K, B]}.
  """
  def one(arc):
    def batch(total, b):
      hits = correct(state.params, state.batch_stats, arc, b['image'],
                     b['label'], b['mask'], model=model, preprocess=preprocess)
      return total + hits, None
    total, _ = jax.lax.scan(batch, jnp.zeros(()), batches)
    return total / jnp.sum(batches['mask'])
  return jax.lax.map(one, arcs)


# The language model (recurrent cells). The family is `darts.rnn.
# LanguageModel` over an `RNNModel` with the shared cell; its weight step is
# the DARTS step's, with the sampled arc where alpha goes.


def lm_child_step(state: EnasState, batch: types.Batch, *, family, space,
                  controller_config):
  """One shared-weight step on a training window with a sampled arc: the
  training stream's hidden state carried, the update scaled by seq_len /
  bptt (`bilevel`'s weight step). Returns (state, metrics)."""
  k_arc = jax.random.fold_in(_keys(state)[0], 1)
  arc = controller_lib.sample(state.controller.params, k_arc, space=space,
                              config=controller_config).arc
  grads, batch_stats, metrics, carry, scale = darts_step.train_gradients(
      state, arc, batch, family=family)
  return darts_step.apply_step(state, grads, batch_stats, metrics, scale,
                               carry=carry)


def lm_cross_entropy(params, arc, inputs, targets, *, model):
  """Mean cross-entropy of one window [rows, T] for `arc`, in evaluation
  mode, from a zero hidden state (the reference resets the state before
  every controller sample)."""
  h = jnp.zeros((inputs.shape[0], model.units), params['embedding'].dtype)
  logits, _, _ = model.apply({'params': params}, inputs, h, arc)
  return optax.softmax_cross_entropy_with_integer_labels(
      logits, targets).mean()


def lm_controller_step(state: EnasState, batches: types.Batch, *, model,
                       space, controller_config, entropy_weight: float,
                       baseline_decay: float, reward_constant: float = 80.0):
  """One REINFORCE update from N children, each scored on its own
  validation window: reward = reward_constant / perplexity.

  `batches`: {'inputs': [N, rows, T], 'targets': [N, rows, T]}.
  """
  n = batches['inputs'].shape[0]
  keys = jax.random.split(_keys(state)[1], n)
  cfg = controller_config
  arcs = jax.vmap(functools.partial(
      controller_lib.sample, space=space, config=cfg),
                  in_axes=(None, 0))(state.controller.params, keys).arc
  ce = jax.lax.map(
      lambda a: lm_cross_entropy(state.params, a[0], a[1], a[2], model=model),
      (arcs, batches['inputs'], batches['targets']))
  # A sampled cell whose loss overflows or is NaN is the worst child: reward
  # 0 (infinite perplexity), not a reason to stop the search.
  ce = jnp.where(jnp.isnan(ce), jnp.inf, ce)
  ppl = jnp.exp(ce)
  ctrl, metrics = reinforce.update(
      state.controller, arcs, reward_constant / ppl,
      score=functools.partial(controller_lib.log_prob, space=space,
                              config=cfg),
      tx=state.controller_tx, entropy_weight=entropy_weight,
      decay=baseline_decay)
  metrics = {k: v for k, v in metrics.items()
             if k not in ('skip_penalty', 'skips')}
  new, metrics = train_state.keep_if_finite(
      state, state.replace(controller=ctrl), metrics)
  # Reported, not guarded: infinite when a child diverged.
  metrics.update(perplexity=jnp.exp(ce.mean()), min_perplexity=ppl.min(),
                 diverged_children=jnp.sum(~jnp.isfinite(ce)))
  return new, metrics


def lm_score_arcs(state: EnasState, arcs, data, *, model, bptt: int):
  """[N] reward_constant-free score of each of N arcs: minus the mean
  cross-entropy over `data` [rows, tokens] read in windows of `bptt` with
  the hidden state carried (`darts.rnn.evaluate`), so higher is better and
  exp(-score) is the perplexity."""
  return jax.lax.map(
      lambda arc: -rnn.evaluate(model, state.params, {}, arc, data,
                                bptt=bptt), arcs)
