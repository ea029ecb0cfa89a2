"""The bilevel step's compiled forms, retracing, determinism, the NaN guard.

The exactness of the hypergradient itself: tests/hypergradient_test.py.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nasjax import bilevel as step_lib
from tests import helpers
from tests.hypergradient_test import _f64_problem
from tests.hypergradient_test import _rel


@functools.cache
def _f64_weight_step():
  return jax.jit(functools.partial(step_lib.weight_step, model=helpers.MODEL,
                                   preprocess=helpers.PREP64))


def _jit_stage(fn, batch_argnums=(), donate_argnums=(), light=False):
  del batch_argnums, light  # One device; compile as usual.
  return jax.jit(fn, donate_argnums=donate_argnums)


_COMPILE_EVENTS = []  # JAX's tracing, lowering, compiling and cache reads.
jax.monitoring.register_event_duration_secs_listener(
    lambda event, secs, **kw: _COMPILE_EVENTS.append(event)
    if event.startswith(('/jax/core/compile/', '/jax/compilation_cache/'))
    else None)


@pytest.mark.parametrize('arch_mode', ['first_order', 'second_order',
                                       'finite_difference'])
def test_staged_step_equals_the_math_and_never_retraces(arch_mode):
  """The staged step (as the binaries run it) takes the one-program step.

  alpha moves by the arch optimiser's update of arch_gradient's g_alpha (for
  second order: the hypergradient checked above against finite
  differences); the weights then take a weight step at the new alpha.
  """
  with jax.enable_x64(True):
    state, tb, vb, grad, exact = _f64_problem()
    step = step_lib.staged_search_step(
        _jit_stage, model=helpers.MODEL, preprocess=helpers.PREP64,
        arch_mode=arch_mode, learning_rate=helpers.schedule(0.1))
    # Every stage compiled ahead, from abstract batches: the first step then
    # neither traces nor compiles.
    abstract = lambda b: jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), b)
    step.precompile(state, abstract(tb), abstract(vb))
    fresh = jax.tree.map(jnp.copy, state)  # The step donates its state.
    del _COMPILE_EVENTS[:]
    new, metrics = step(fresh, tb, vb)
    assert not _COMPILE_EVENTS, _COMPILE_EVENTS
    g = (exact if arch_mode == 'second_order' else
         grad(state, tb, vb, arch_mode=arch_mode, fd_radius=0.01)[0])
    updates, arch_opt_state = state.arch_tx.update(g, state.arch_opt_state,
                                                   state.alpha)
    alpha = optax.apply_updates(state.alpha, updates)
    delta = lambda a: jax.tree.map(jnp.subtract, a, state.alpha)
    assert _rel(delta(new.alpha), delta(alpha)) < 1e-10
    chex.assert_trees_all_close(new.arch_opt_state, arch_opt_state,
                                rtol=1e-10)
    expected, expected_metrics = _f64_weight_step()(
        state.replace(alpha=alpha, arch_opt_state=arch_opt_state), tb)
    chex.assert_trees_all_close(
        (new.params, new.batch_stats, new.opt_state, new.step),
        (expected.params, expected.batch_stats, expected.opt_state,
         expected.step), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(metrics['train_loss'],
                               expected_metrics['train_loss'], rtol=1e-12)
    assert bool(metrics['finite'])

    # New alpha, weights and batches reuse every compiled stage.
    sizes = {k: f._cache_size() for k, f in step.stages.items()}
    step(new, helpers.batch(3), helpers.batch(4))
    assert {k: f._cache_size() for k, f in step.stages.items()} == sizes


def test_second_order_with_zero_lr_equals_first_order():
  state = helpers.make_state(lr=0.0)
  tb, vb = helpers.batch(1), helpers.batch(2)
  args = dict(model=helpers.MODEL, preprocess=helpers.PREP)
  grad = jax.jit(functools.partial(step_lib.arch_gradient, **args),
                 static_argnames='arch_mode')
  first = grad(state, tb, vb, arch_mode='first_order')
  second = grad(state, tb, vb, arch_mode='second_order')
  chex.assert_trees_all_close(first[0], second[0], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(first[1], second[1], rtol=1e-6)


def test_one_trace_for_new_alpha_and_batches_and_determinism():
  @chex.assert_max_traces(n=1)
  def fn(state, train_batch, val_batch):
    return step_lib.search_step(state, train_batch, val_batch,
                                model=helpers.MODEL, preprocess=helpers.PREP,
                                arch_mode='first_order')

  step = jax.jit(fn)
  state = helpers.make_state()
  s1, m1 = step(state, helpers.batch(1), helpers.batch(2))
  s2, m2 = step(s1, helpers.batch(3), helpers.batch(4))  # new alpha, batches
  chex.assert_trees_all_equal_shapes(state, s2)
  chex.assert_tree_all_finite((s2.params, s2.alpha))
  assert not np.allclose(s1.alpha['normal'], state.alpha['normal'])
  again, m1b = step(state, helpers.batch(1), helpers.batch(2))
  same_key = jax.random.key_data(s1.rng) == jax.random.key_data(again.rng)
  assert bool(jax.numpy.all(same_key))
  chex.assert_trees_all_equal(jax.device_get((s1.params, s1.alpha,
                                              s1.opt_state)),
                              jax.device_get((again.params, again.alpha,
                                              again.opt_state)))
  assert float(m1['val_loss']) == float(m1b['val_loss'])


def test_non_finite_loss_leaves_state_unchanged():
  state = helpers.make_state()
  bad = jax.tree.map(lambda a: a * jnp.nan, state.params)
  state_bad = state.replace(params=bad)
  step = jax.jit(functools.partial(step_lib.weight_step, model=helpers.MODEL,
                                   preprocess=helpers.PREP))
  new, metrics = step(state_bad, helpers.batch(1))
  assert not bool(metrics['finite'])
  # Every leaf, not only the step counter (NaNs compare equal in place).
  chex.assert_trees_all_equal(jax.device_get(new.checkpoint_items()),
                              jax.device_get(state_bad.checkpoint_items()))


@pytest.mark.parametrize('where,arch_mode', [
    ('weights', 'weights_only'), ('weights', 'first_order'),
    ('alpha', 'first_order')])
def test_finite_loss_with_non_finite_gradient_leaves_state_unchanged(
    where, arch_mode):
  """The loss is finite, but the weight gradient or the hypergradient is
  NaN: nothing of the step may reach the state."""
  model = helpers.NanGradientModel(helpers.MODEL, where)
  kw = dict(model=model, preprocess=helpers.PREP)
  if arch_mode == 'weights_only':
    step = jax.jit(functools.partial(step_lib.weight_step, **kw))
    args = (helpers.batch(1),)
  else:
    step = jax.jit(functools.partial(step_lib.search_step, **kw,
                                     arch_mode=arch_mode))
    args = (helpers.batch(1), helpers.batch(2))
  state = helpers.make_state()
  new, metrics = step(state, *args)
  # The first loss of the step (the validation loss of a search step; its
  # training loss is taken at the already-updated alpha).
  assert np.isfinite(metrics['train_loss' if arch_mode == 'weights_only'
                             else 'val_loss'])
  assert not bool(metrics['finite'])
  chex.assert_trees_all_equal(jax.device_get(new.checkpoint_items()),
                              jax.device_get(state.checkpoint_items()))


def test_unknown_arch_mode():
  with pytest.raises(ValueError, match='Unknown arch_mode.*first_order'):
    step_lib.arch_gradient(helpers.make_state(), helpers.batch(1),
                           helpers.batch(2), model=helpers.MODEL,
                           preprocess=helpers.PREP, arch_mode='third_order')


def test_torch_style_clip_is_clip_grad_norm():
  """`clip_eps=1e-6` is PyTorch's `clip_grad_norm_` (scale by
  min(1, max / (norm + 1e-6))), written out here in float64: below the
  bound, at it and above it; eps 0 is optax's (max / norm). The two differ
  by a relative 1e-6 / norm when the clip acts."""
  from nasjax import optim  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    for scale in (1e-3, 0.1, 0.25, 4.0):
      g = {'a': rng.normal(size=(3, 4)), 'b': rng.normal(size=5)}
      norm = np.sqrt(sum(np.sum(x * x) for x in g.values()))
      g = {k: v * scale / norm for k, v in g.items()}
      norm = scale
      for eps in (1e-6, 0.0):
        coef = min(1.0, 0.25 / (norm + eps))
        tx = optim.clip_by_global_norm(0.25, eps)
        out, _ = tx.update(jax.tree.map(jnp.asarray, g), tx.init(g))
        for k in g:
          np.testing.assert_allclose(out[k], g[k] * coef, rtol=1e-15)
    # Through the weight optimiser the binaries build (lr 1, no momentum or
    # decay): the step is minus the clipped gradient.
    tx = optim.weight_optimizer(1.0, momentum=0.0, weight_decay=0.0, clip=0.25,
                                clip_eps=1e-6)
    g = {'a': jnp.asarray([3.0, 4.0])}
    out, _ = tx.update(g, tx.init(g), g)
    np.testing.assert_allclose(out['a'], -np.asarray([3.0, 4.0]) * 0.25 /
                               (5.0 + 1e-6), rtol=1e-15)
