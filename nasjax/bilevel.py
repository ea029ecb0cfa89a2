"""The DARTS bilevel step, as pure functions.

Liu et al. (2019), Algorithm 1, with the architecture step taken first on a
validation batch and the weight step second on a training batch:

  g_alpha = d/d alpha L_val(w'(alpha), alpha),
      w'(alpha) = w + U(grad_w L_train(w, alpha))    # the virtual step
  alpha  <- alpha + arch_tx(g_alpha)
  w      <- w + tx(grad_w L_train(w, alpha))

Three ways to get g_alpha (`arch_mode`):

* 'first_order': w' = w, so g_alpha = grad_alpha L_val(w, alpha).
* 'second_order' (exact): U is the *real* weight update `tx.update` with the
  current optimiser state (SGD momentum buffer, weight decay, clipping, and
  the current learning rate), and JAX differentiates L_val(w'(alpha), alpha)
  through it: through the training gradient (a second derivative of the
  network) and through the optax update. Any optax `tx` works. By default
  the derivative is assembled by the chain rule (a VJP through the optax
  update and an exact forward-over-reverse Hessian-vector product); the
  literal reverse-mode gradient of the unrolled step is
  `second_order_impl='unrolled'`. They agree to float precision; the first
  needs much less memory.
* 'finite_difference': the paper's approximation (its eq. 7-8). With
  v = grad_w' L_val(w', alpha) and r = radius / ||v||,
    g_alpha ~ grad_alpha L_val(w', alpha)
              - eta * (grad_alpha L_train(w + r v) - grad_alpha L_train(w - r v)) / 2r,
  which assumes dw'/dg = -eta I (true for SGD with momentum and weight decay,
  without clipping). It is cheaper to compile but inexact: across a ReLU or
  max-pool kink the perturbation r v changes the active set, and on small
  float64 networks the default radius 0.01 is 66-73 % off the exact gradient
  (docs/reference_figures.md 5; tests/darts_step_test.py shows it here).

BatchNorm in the virtual step: every forward pass of a search runs BatchNorm in
training mode, so outputs are normalised with the statistics of the batch at
hand and the running statistics never enter a loss. The virtual step and the
validation pass therefore do not read them, and the running statistics they
would produce are discarded: only the real weight step updates them (the
reference also lets the architect's passes update them, a side effect with no
influence on the search). The running statistics are used only to evaluate in
inference mode.

The loss comes from the model family (`Family`): `Images` (a search network
and its preprocessing: cross-entropy, BatchNorm statistics) for the
convolutional cells, `nasjax.darts.rnn.LanguageModel` (token windows, hidden
states carried from window to window in `state.carry`, the update scaled by
the window length) for the recurrent cell. Every mode and both step forms
work for any family.

All steps are `(state, batches...) -> (state, metrics)` with the family (or
the model and its input preprocessing) bound as keyword-only static
arguments. A non-finite loss
leaves the state unchanged and is reported in the metrics (`finite`), so the
loop can stop without corrupting the state.

`staged_search_step` runs the same step as a few compiled programs cut at
the network passes (one gradient program called three times, one
Hessian-vector product, small updates): same numbers, faster to compile and
smaller; the binaries use it for second order.

Synopsis:

  step = functools.partial(search_step, model=model, preprocess=prep,
                           arch_mode='second_order')
  state, metrics = jax.jit(step, donate_argnums=0)(state, train_b, val_b)

  step = staged_search_step(parallel.stage_jitter(mesh), model=model,
                            preprocess=prep, arch_mode='second_order')
  step.precompile(state, train_b, val_b)    # optional: compile ahead
  state, metrics = step(state, train_b, val_b)
"""

import concurrent.futures
import dataclasses
import functools
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import optax

from nasjax import train_state
from nasjax import types
from nasjax.train_state import SearchState

ARCH_MODES = ('first_order', 'second_order', 'finite_difference')
Preprocess = Callable[[jax.Array, jax.Array, bool], jax.Array]
STREAMS = ('train', 'val')  # salt 0 and 1


class Family(Protocol):
  """What a model family supplies to the bilevel step: its loss.

  `prepare(rng, step, salt, batch, carry)`: the loss's inputs from a batch
    (salt 0: a training batch, 1: a validation batch; `carry`: what the
    stream carried from its previous step, or None).
  `loss(params, batch_stats, alpha, inputs)`: (loss, (batch_stats, aux));
    aux is a dict, with the stream's next 'carry' when it has one.
  `metrics(aux, inputs)`: scalars reported per stream (e.g. 'accuracy').
  `update_scale(inputs)`: the factor on the weight update of this batch (1;
    the language model's seq_len / bptt).
  """

  def prepare(self, rng, step, salt, batch, carry) -> Any: ...
  def loss(self, params, batch_stats, alpha, inputs) -> tuple: ...
  def metrics(self, aux, inputs) -> dict: ...
  def update_scale(self, inputs) -> Any: ...


def _loss(params, batch_stats, alpha, images, labels, *, model):
  """Cross-entropy with BatchNorm in training mode. aux = (stats, logits)."""
  logits, updates = model.apply(
      {'params': params, 'batch_stats': batch_stats}, images, alpha,
      train=True, mutable=['batch_stats'])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, (updates['batch_stats'], logits)


def _accuracy(logits, labels):
  return jnp.mean(jnp.argmax(logits, -1) == labels)


@dataclasses.dataclass(frozen=True)
class Images:
  """The image classification family: a search network and its input
  preprocessing; cross-entropy over labels; no carry."""
  model: Any
  preprocess: Preprocess

  def prepare(self, rng, step, salt, batch, carry=None):
    del carry
    rng = jax.random.fold_in(jax.random.fold_in(rng, step), salt)
    return {'image': self.preprocess(batch['image'], rng, True),
            'label': batch['label']}

  def loss(self, params, batch_stats, alpha, inputs):
    loss, (stats, logits) = _loss(params, batch_stats, alpha, inputs['image'],
                                  inputs['label'], model=self.model)
    return loss, (stats, {'logits': logits})

  def metrics(self, aux, inputs):
    return {'accuracy': _accuracy(aux['logits'], inputs['label'])}

  def update_scale(self, inputs):
    del inputs
    return 1.0


def family_of(model, preprocess: Preprocess | None = None) -> Family:
  """`model` if it is a `Family`, else `Images(model, preprocess)`."""
  if preprocess is None and hasattr(model, 'prepare'):
    return model
  if preprocess is None:
    raise ValueError('An image search network needs `preprocess`.')
  return Images(model, preprocess)


def _loss_and_grads(params, batch_stats, alpha, inputs, *, family):
  """((loss, (stats, aux)), (grad_w, grad_alpha)): one network pass.

  The staged step jits this once and calls it from both of its network
  programs (`staged_search_step`), so JAX traces the network and its
  gradient once: the Hessian-vector product is a JVP of that trace.
  """
  return jax.value_and_grad(family.loss, argnums=(0, 2), has_aux=True)(
      params, batch_stats, alpha, inputs)


def _inputs(state: SearchState, batch, salt, family):
  return family.prepare(state.rng, state.step, salt, batch,
                        state.carry.get(STREAMS[salt]))


def _with_carry(carry: dict, salt: int, aux: dict) -> dict:
  """`carry` with stream `salt`'s entry replaced by the pass's next carry."""
  if aux.get('carry') is None:
    return carry
  return {**carry, STREAMS[salt]: aux['carry']}


def _apply_weight_update(state: SearchState, grads, scale=1.0):
  """The weights `tx` would produce from `grads` now, its update scaled by
  `scale` (the state is unchanged)."""
  updates, _ = state.tx.update(grads, state.opt_state, state.params)
  updates = jax.tree.map(lambda u: u * jnp.asarray(scale, u.dtype), updates)
  return optax.apply_updates(state.params, updates)


def _grad_alpha_fn(state: SearchState, inputs, family):
  """w -> grad_alpha L(w, alpha) on the given inputs."""
  return lambda w: jax.grad(family.loss, argnums=2, has_aux=True)(
      w, state.batch_stats, state.alpha, inputs)[0]


def implicit_term(state: SearchState, train_grads, val_grad_w, train_batch, *,
                  model, preprocess: Preprocess | None = None,
                  network: Callable | None = None):
  """The second-order part of the exact hypergradient.

  With w' = U(g(alpha)), g = grad_w L_train(w, alpha) (`train_grads`) and
  v = grad_w' L_val(w', alpha) (`val_grad_w`):

    dL_val(w'(alpha), alpha)/dalpha = grad_alpha L_val(w') + (dg/dalpha)^T u,
    u = (dU/dg)^T v.

  u is a VJP through the optax update. (dg/dalpha)^T u =
  d/de grad_alpha L_train(w + e u, alpha) at e = 0 (the mixed partials
  commute) is an exact Hessian-vector product, taken forward-over-reverse
  (jax.jvp), which stores far less than differentiating the unrolled step in
  reverse. Returns it, with alpha's structure.

  `model`, `preprocess`: the search network and its preprocessing, or a
  `Family` as `model` (`family_of`); the same for every function here.
  `network`: a (jitted) `_loss_and_grads` bound to the family, whose alpha
  gradient is then differentiated instead of a fresh trace of the model
  (same numbers; the staged step shares one trace between its programs).
  """
  family = family_of(model, preprocess)
  inputs = _inputs(state, train_batch, 0, family)
  scale = family.update_scale(inputs)
  _, update_vjp = jax.vjp(
      lambda g: _apply_weight_update(state, g, scale), train_grads)
  (u,) = update_vjp(val_grad_w)
  if network is None:
    grad_alpha = _grad_alpha_fn(state, inputs, family)
  else:
    grad_alpha = lambda w: network(w, state.batch_stats, state.alpha,
                                   inputs)[1][1]
  _, implicit = jax.jvp(grad_alpha, (state.params,), (u,))
  return implicit


def finite_difference_term(state: SearchState, val_grad_w, train_batch, *,
                           model, preprocess: Preprocess | None = None,
                           learning_rate: Callable, fd_radius: float):
  """The paper's approximation of `implicit_term` (its eq. 7-8).

  -eta (grad_alpha L_train(w + r v) - grad_alpha L_train(w - r v)) / 2r,
  r = fd_radius / ||v||, v = `val_grad_w`, eta = the current learning rate
  times the family's update scale.
  """
  family = family_of(model, preprocess)
  inputs = _inputs(state, train_batch, 0, family)
  grad_alpha_train = _grad_alpha_fn(state, inputs, family)
  r = fd_radius / optax.global_norm(val_grad_w)
  shift = lambda sign: jax.tree.map(lambda p, d: p + sign * r * d,
                                    state.params, val_grad_w)
  g_plus, g_minus = grad_alpha_train(shift(1.0)), grad_alpha_train(shift(-1.0))
  eta = learning_rate(state.step) * family.update_scale(inputs)
  return jax.tree.map(lambda p, m: -eta * (p - m) / (2 * r), g_plus, g_minus)


def virtual_step(state: SearchState, alpha, inputs, *, model,
                 preprocess: Preprocess | None = None):
  """w'(alpha): the weight update `tx` would make now, as a function of
  alpha, from prepared training inputs (`Family.prepare`)."""
  family = family_of(model, preprocess)
  grads, _ = jax.grad(family.loss, has_aux=True)(
      state.params, state.batch_stats, alpha, inputs)
  return _apply_weight_update(state, grads, family.update_scale(inputs))


def arch_gradient(state: SearchState, train_batch, val_batch, *, model,
                  preprocess: Preprocess | None = None, arch_mode: str,
                  learning_rate: Callable | None = None,
                  fd_radius: float = 0.01, second_order_impl: str = 'hvp'):
  """g_alpha by `arch_mode`, plus the validation pass.

  Args:
    state: current search state.
    train_batch, val_batch: batches of the family ({'image', 'label'} for
      images).
    model, preprocess: the search network and its preprocessing ((uint8
      images, rng, train) -> float images), or a `Family` as `model`.
    arch_mode: one of ARCH_MODES.
    learning_rate: step -> lr; needed by 'finite_difference' only (eta).
    fd_radius: the r numerator of 'finite_difference'.
    second_order_impl: how 'second_order' computes the exact hypergradient:
      'unrolled' differentiates alpha -> L_val(w'(alpha), alpha) in reverse
      mode, literally; 'hvp' (default) computes the same derivative by the
      chain rule with a forward-over-reverse Hessian-vector product, with much
      less memory. Both are exact (tests check they agree).

  Returns:
    (g_alpha with alpha's structure, val_loss, val_aux, val_inputs)
  """
  if arch_mode not in ARCH_MODES:
    raise ValueError(f'Unknown arch_mode {arch_mode!r}; valid: {ARCH_MODES}.')
  family = family_of(model, preprocess)
  val_in = _inputs(state, val_batch, 1, family)
  if arch_mode == 'first_order':
    (val_loss, (_, aux)), g = jax.value_and_grad(
        family.loss, argnums=2, has_aux=True)(
            state.params, state.batch_stats, state.alpha, val_in)
    return g, val_loss, aux, val_in

  train_in = _inputs(state, train_batch, 0, family)
  if arch_mode == 'second_order' and second_order_impl == 'unrolled':

    def unrolled_val_loss(alpha):
      w2 = virtual_step(state, alpha, train_in, model=family)
      return family.loss(w2, state.batch_stats, alpha, val_in)

    (val_loss, (_, aux)), g = jax.value_and_grad(
        unrolled_val_loss, has_aux=True)(state.alpha)
    return g, val_loss, aux, val_in

  if arch_mode == 'second_order' and second_order_impl != 'hvp':
    raise ValueError(f'Unknown second_order_impl {second_order_impl!r}; '
                     "valid: 'hvp', 'unrolled'.")
  if arch_mode == 'finite_difference' and learning_rate is None:
    raise ValueError("arch_mode='finite_difference' needs learning_rate.")
  grads, _ = jax.grad(family.loss, has_aux=True)(
      state.params, state.batch_stats, state.alpha, train_in)
  w2 = _apply_weight_update(state, grads, family.update_scale(train_in))
  (val_loss, (_, aux)), (g_alpha, v) = jax.value_and_grad(
      family.loss, argnums=(2, 0), has_aux=True)(w2, state.batch_stats,
                                                 state.alpha, val_in)
  if arch_mode == 'second_order':
    term = implicit_term(state, grads, v, train_batch, model=family)
  else:
    term = finite_difference_term(state, v, train_batch, model=family,
                                  learning_rate=learning_rate,
                                  fd_radius=fd_radius)
  g = jax.tree.map(jnp.add, g_alpha, term)
  return g, val_loss, aux, val_in


def train_gradients(state: SearchState, alpha, train_batch, *, family):
  """(grads, new BatchNorm stats, metrics, carry, update scale) of the
  training loss at alpha.

  A family with `alpha_gradient_metric` (the one-shot loop's) also takes
  the training loss's gradient in alpha and reports its norm
  ('train_alpha_grad_norm'). On XLA:CPU that makes the NB201 weight step
  5x faster (10.2 s -> 1.8 s at C=16, N=5, batch 64): with alpha traced
  and its gradient not taken, XLA compiled a program 3x larger, mostly
  selects (benchmarks/README.md)."""
  inputs = _inputs(state, train_batch, 0, family)
  extra = {}
  if getattr(family, 'alpha_gradient_metric', False):
    (loss, (batch_stats, aux)), (grads, g_alpha) = jax.value_and_grad(
        family.loss, argnums=(0, 2), has_aux=True)(
            state.params, state.batch_stats, alpha, inputs)
    extra = {'train_alpha_grad_norm': optax.global_norm(g_alpha)}
  else:
    (loss, (batch_stats, aux)), grads = jax.value_and_grad(
        family.loss, has_aux=True)(state.params, state.batch_stats, alpha,
                                   inputs)
  metrics = {'train_loss': loss, **extra, **{
      f'train_{k}': v for k, v in family.metrics(aux, inputs).items()}}
  return (grads, batch_stats, metrics, _with_carry(state.carry, 0, aux),
          family.update_scale(inputs))


def apply_step(state: SearchState, grads, batch_stats, metrics, scale=1.0,
                **fields):
  """The state after the weight update from `grads`, scaled by `scale` (plus
  `fields`: alpha, arch_opt_state, carry), NaN-guarded; the shared end of
  every step."""
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  updates = jax.tree.map(lambda u: u * jnp.asarray(scale, u.dtype), updates)
  new = state.replace(step=state.step + 1,
                      params=optax.apply_updates(state.params, updates),
                      batch_stats=batch_stats, opt_state=opt_state, **fields)
  return train_state.keep_if_finite(
      state, new, {**metrics, 'grad_norm': optax.global_norm(grads)})


def weight_step(state: SearchState, train_batch: types.Batch, *, model,
                preprocess: Preprocess | None = None):
  """One weight step with alpha fixed. Returns (state, metrics)."""
  grads, batch_stats, metrics, carry, scale = train_gradients(
      state, state.alpha, train_batch, family=family_of(model, preprocess))
  return apply_step(state, grads, batch_stats, metrics, scale, carry=carry)


def _arch_update(state: SearchState, g_alpha, term=None, *,
                 regularizer: Callable | None = None):
  """(alpha, arch_opt_state, ||g||) after arch_tx's step on g_alpha + term
  (+ the gradient of `regularizer(alpha, step)`, a penalty on alpha alone,
  which adds its own gradient to the exact hypergradient of every mode)."""
  if term is not None:
    g_alpha = jax.tree.map(jnp.add, g_alpha, term)
  if regularizer is not None:
    g_alpha = jax.tree.map(jnp.add, g_alpha, jax.grad(regularizer)(
        state.alpha, state.step))
  updates, arch_opt_state = state.arch_tx.update(g_alpha, state.arch_opt_state,
                                                 state.alpha)
  return (optax.apply_updates(state.alpha, updates), arch_opt_state,
          optax.global_norm(g_alpha))


def search_step(state: SearchState, train_batch: types.Batch,
                val_batch: types.Batch, *, model,
                preprocess: Preprocess | None = None, arch_mode: str,
                learning_rate: Callable | None = None,
                fd_radius: float = 0.01, second_order_impl: str = 'hvp',
                arch_regularizer: Callable | None = None):
  """One DARTS step: alpha on `val_batch`, then weights on `train_batch`.

  The validation stream's carry comes from the validation pass (at w' in
  second order), the training stream's from the weight step's pass.
  `arch_regularizer(alpha, step)`: a penalty on alpha added to the
  architecture objective (e.g. `strategies.darts.BetaDecay`).
  """
  family = family_of(model, preprocess)
  g_alpha, val_loss, val_aux, val_in = arch_gradient(
      state, train_batch, val_batch, model=family, arch_mode=arch_mode,
      learning_rate=learning_rate, fd_radius=fd_radius,
      second_order_impl=second_order_impl)
  alpha, arch_opt_state, arch_grad_norm = _arch_update(
      state, g_alpha, regularizer=arch_regularizer)
  grads, batch_stats, metrics, carry, scale = train_gradients(
      state, alpha, train_batch, family=family)
  metrics.update(val_loss=val_loss, arch_grad_norm=arch_grad_norm, **{
      f'val_{k}': v for k, v in family.metrics(val_aux, val_in).items()})
  return apply_step(state, grads, batch_stats, metrics, scale, alpha=alpha,
                     arch_opt_state=arch_opt_state,
                     carry=_with_carry(carry, 1, val_aux))


def batch_gradients(params, batch_stats, alpha, rng, step, salt, batch,
                    carry=None, *, model, preprocess: Preprocess | None = None,
                    network: Callable | None = None):
  """Loss and gradients w.r.t. (weights, alpha) on one batch: a staged pass.

  `salt` selects the stream as in the one-program step (0 for a training
  batch, 1 for a validation batch); it is an argument, not a constant, so
  one compiled program serves every pass of a step. `carry`: the stream's
  carry (None for images). `network`: as in `implicit_term`.
  Returns {'loss', 'metrics', 'batch_stats', 'grad_w', 'grad_alpha',
  'carry', 'update_scale'}.
  """
  family = family_of(model, preprocess)
  inputs = family.prepare(rng, step, salt, batch, carry)
  network = network or functools.partial(_loss_and_grads, family=family)
  (loss, (stats, aux)), (grad_w, grad_alpha) = network(
      params, batch_stats, alpha, inputs)
  return {'loss': loss, 'metrics': family.metrics(aux, inputs),
          'batch_stats': stats, 'grad_w': grad_w, 'grad_alpha': grad_alpha,
          'carry': aux.get('carry'),
          'update_scale': jnp.asarray(family.update_scale(inputs),
                                      jnp.float32)}


def _finish(state: SearchState, alpha, arch_opt_state, train, val_loss,
            val_metrics, val_carry, arch_grad_norm):
  metrics = {'train_loss': train['loss'], 'val_loss': val_loss,
             'arch_grad_norm': arch_grad_norm,
             **{f'train_{k}': v for k, v in train['metrics'].items()},
             **{f'val_{k}': v for k, v in val_metrics.items()}}
  carry = _with_carry(_with_carry(state.carry, 0, train), 1,
                      {'carry': val_carry})
  return apply_step(state, train['grad_w'], train['batch_stats'], metrics,
                     train['update_scale'], alpha=alpha,
                     arch_opt_state=arch_opt_state, carry=carry)


def staged_search_step(jit_stage: Callable, *, model,
                       preprocess: Preprocess | None = None, arch_mode: str,
                       learning_rate: Callable | None = None,
                       fd_radius: float = 0.01,
                       arch_regularizer: Callable | None = None):
  """`search_step` as a few compiled programs instead of one.

  The same mathematics (tests check the results agree), cut at the network
  passes: one program computes the loss and the (weight, alpha) gradients of
  a batch (`batch_gradients`) and is called for each pass of the step, with
  other weights, alpha or batch but the same shapes, so it compiles once;
  second order adds one program for `implicit_term` (the Hessian-vector
  product), the finite-difference mode one for `finite_difference_term`;
  small programs take the virtual step, update alpha and apply the weight
  update (with the NaN guard, donating the old state). The gradient program
  and the Hessian-vector product call one jitted network pass
  (`_loss_and_grads`), so the network is traced once.

  Why: XLA compiles one large program much more slowly than its parts. On the
  2-core CPU, the exact second-order step at C=8, 5 cells compiled in about
  6 minutes as one program (benchmarks/README.md). The costs: every pass computes
  both gradients (the training passes need only the weight gradient, first
  order's validation pass only alpha's, which is why the binaries run first
  order as one program), and XLA cannot overlap or fuse work across the cuts
  (little to fuse: the cuts are between whole network passes).

  Args:
    jit_stage: jit_stage(fn, batch_argnums=(), donate_argnums=(),
      light=False) -> the compiled fn; `parallel.stage_jitter(mesh)` shards
      the batch arguments and replicates the rest, and compiles the `light`
      programs (pytree updates, no network pass) quickly on a CPU.
      `jax.jit`-like on one device.
    model, preprocess, arch_mode, learning_rate, fd_radius,
      arch_regularizer: as `search_step`
      ('second_order' is the exact, 'hvp' form).

  The state is replicated (`parallel.replicate`; a language model's hidden
  states too, unlike `parallel.place`).

  Returns:
    step(state, train_batch, val_batch) -> (state, metrics), with
    `step.stages`, the compiled stages by name (for inspection and tests),
    and `step.precompile(state, train_batch, val_batch, workers=2)`, which
    compiles every stage before the first step, up to `workers` XLA compiles
    at a time (the batches may be `jax.ShapeDtypeStruct`s).
  """
  if arch_mode not in ARCH_MODES:
    raise ValueError(f'Unknown arch_mode {arch_mode!r}; valid: {ARCH_MODES}.')
  if arch_mode == 'finite_difference' and learning_rate is None:
    raise ValueError("arch_mode='finite_difference' needs learning_rate.")
  family = family_of(model, preprocess)
  network = jax.jit(functools.partial(_loss_and_grads, family=family))
  bound = dict(model=family)
  stages = {
      'gradients': jit_stage(
          functools.partial(batch_gradients, **bound, network=network),
          batch_argnums=(6,)),
      'arch_update': jit_stage(functools.partial(
          _arch_update, regularizer=arch_regularizer), light=True),
      'finish': jit_stage(_finish, donate_argnums=(0,), light=True),
  }
  if arch_mode != 'first_order':
    stages['virtual_step'] = jit_stage(_apply_weight_update, light=True)
  if arch_mode == 'second_order':
    stages['implicit_term'] = jit_stage(
        functools.partial(implicit_term, **bound, network=network),
        batch_argnums=(3,))
  elif arch_mode == 'finite_difference':
    stages['finite_difference_term'] = jit_stage(
        functools.partial(finite_difference_term, **bound,
                          learning_rate=learning_rate, fd_radius=fd_radius),
        batch_argnums=(2,))

  def run(call, state: SearchState, train_batch, val_batch):
    """The step's dataflow; call(name, *args) runs (or compiles) a stage."""
    common = (state.batch_stats, state.alpha, state.rng, state.step)
    carry = {salt: state.carry.get(name) for salt, name in enumerate(STREAMS)}
    term = None
    if arch_mode == 'first_order':
      val = call('gradients', state.params, *common, 1, val_batch, carry[1])
    else:
      train = call('gradients', state.params, *common, 0, train_batch,
                   carry[0])
      w2 = call('virtual_step', state, train['grad_w'], train['update_scale'])
      val = call('gradients', w2, *common, 1, val_batch, carry[1])
      if arch_mode == 'second_order':
        term = call('implicit_term', state, train['grad_w'], val['grad_w'],
                    train_batch)
      else:
        term = call('finite_difference_term', state, val['grad_w'],
                    train_batch)
    alpha, arch_opt_state, arch_grad_norm = call(
        'arch_update', state, val['grad_alpha'], term)
    train = call('gradients', state.params, state.batch_stats, alpha,
                 state.rng, state.step, 0, train_batch, carry[0])
    return call('finish', state, alpha, arch_opt_state, train, val['loss'],
                val['metrics'], val['carry'], arch_grad_norm)

  def step(state: SearchState, train_batch: types.Batch,
           val_batch: types.Batch):
    return run(lambda name, *args: stages[name](*args), state, train_batch,
               val_batch)

  def precompile(state: SearchState, train_batch, val_batch, workers: int = 2):
    """Traces every stage here and compiles them `workers` at a time.

    JAX keeps the executables, so the first step runs without compiling.
    XLA compiles outside Python's lock: on the 2-core CPU the gradient
    program compiles while the Hessian-vector product is traced, and the two
    compile side by side (benchmarks/README.md). Intermediate values are abstract
    (`Lowered.out_info`); the state's values are not used.
    """
    pending = {}  # name -> (compile future, output shapes)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:

      def call(name, *args):
        if name not in pending:  # Later calls have the same shapes.
          lowered = stages[name].lower(*args)
          pending[name] = (pool.submit(lowered.compile), lowered.out_info)
        return pending[name][1]

      run(call, state, train_batch, val_batch)
      for future, _ in pending.values():
        future.result()

  step.stages = stages
  step.precompile = precompile
  return step


def eval_step(state: SearchState, batch: types.Batch, *, model,
              preprocess: Preprocess):
  """Inference-mode (running BatchNorm statistics) sums over a batch.

  Returns {'loss_sum', 'correct', 'count'} so batches can be added up.
  """
  x = preprocess(batch['image'], state.rng, False)
  logits = model.apply({'params': state.params,
                        'batch_stats': state.batch_stats}, x, state.alpha,
                       train=False)
  y = batch['label']
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
  return {'loss_sum': losses.sum(),
          'correct': jnp.sum(jnp.argmax(logits, -1) == y),
          'count': jnp.asarray(y.shape[0])}


def compiled_step(family: Family, mesh, *, arch_mode: str,
                  learning_rate: Callable, staged: bool,
                  fd_radius: float = 0.01, second_order_impl: str = 'hvp',
                  arch_regularizer: Callable | None = None):
  """The step a search loop calls, sharded over `mesh`: the weight step
  ('weights_only'), the staged step (`staged` and an arch mode other than
  first order; it has `precompile`), or the one-program search step."""
  from nasjax import parallel  # pylint: disable=g-import-not-at-top
  if arch_mode == 'weights_only':
    return parallel.jit_step(functools.partial(weight_step, model=family),
                             mesh)
  if staged and arch_mode != 'first_order':
    return staged_search_step(parallel.stage_jitter(mesh), model=family,
                              arch_mode=arch_mode,
                              learning_rate=learning_rate,
                              fd_radius=fd_radius,
                              arch_regularizer=arch_regularizer)
  return parallel.jit_step(
      functools.partial(search_step, model=family, arch_mode=arch_mode,
                        learning_rate=learning_rate, fd_radius=fd_radius,
                        second_order_impl=second_order_impl,
                        arch_regularizer=arch_regularizer),
      mesh, num_batches=2)


def feed(step_fn, mesh, train_it, val_it, weights_only: bool):
  """`(state, i) -> step_fn(state, next batches)` for `loop.run`: a
  training batch, and a validation batch unless `weights_only`."""
  from nasjax import parallel  # pylint: disable=g-import-not-at-top

  def one_step(state, i):
    del i
    _, tb = next(train_it)
    tb = parallel.shard_batch(tb, mesh)
    if weights_only:
      return step_fn(state, tb)
    _, vb = next(val_it)
    return step_fn(state, tb, parallel.shard_batch(vb, mesh))

  return one_step
