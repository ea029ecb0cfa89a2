"""The bilevel step: exactness of the hypergradient, and its compiled form.

Float64 where exactness is checked: the exact second-order alpha gradient is
compared with central finite differences of alpha -> L_val(w'(alpha), alpha),
where w' is the real optimiser's update (with a non-zero momentum buffer).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nasjax.darts import step as step_lib
from tests import helpers


def _rel(a, b):
  a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(a)])
  b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(b)])
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@functools.cache
def _f64_problem():
  """A float64 state whose SGD momentum buffer is non-zero.

  The buffer comes from one optimiser update with a random gradient, as if a
  weight step had been taken (without compiling one).
  """
  with jax.enable_x64(True):
    state = helpers.make_state(seed=3, dtype=jnp.float64, alpha_scale=0.5)
    tb, vb = helpers.batch(1), helpers.batch(2)
    leaves, treedef = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.key(4), len(leaves))
    g = jax.tree.unflatten(treedef, [
        0.1 * jax.random.normal(k, p.shape, p.dtype)
        for k, p in zip(keys, leaves)])
    _, opt_state = state.tx.update(g, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, opt_state=opt_state)
    assert optax.global_norm(opt_state) > 0
    grad = jax.jit(functools.partial(
        step_lib.arch_gradient, model=helpers.MODEL, preprocess=helpers.PREP64,
        learning_rate=helpers.schedule(0.1)), static_argnames=(
            'arch_mode', 'second_order_impl'))
    exact = grad(state, tb, vb, arch_mode='second_order')[0]
    return state, tb, vb, grad, jax.device_get(exact)


def test_exact_hypergradient_equals_central_differences():
  with jax.enable_x64(True):
    state, tb, vb, grad, exact = _f64_problem()
    x_tr = helpers.PREP64(jnp.asarray(tb['image']), None, True)
    x_val = helpers.PREP64(jnp.asarray(vb['image']), None, True)

    def unrolled(alpha):
      w2 = step_lib.virtual_step(state, alpha, x_tr, jnp.asarray(tb['label']),
                                 model=helpers.MODEL)
      return step_lib._loss(w2, state.batch_stats, alpha, x_val,
                            jnp.asarray(vb['label']), model=helpers.MODEL)[0]

    # Every +-eps perturbation of every alpha entry, evaluated in one call.
    eps = 1e-6
    perturbed = {t: [] for t in state.alpha}
    for t, a in state.alpha.items():
      for idx in np.ndindex(a.shape):
        for sign in (1.0, -1.0):
          for u, b in state.alpha.items():
            d = np.zeros(b.shape)
            if u == t:
              d[idx] = sign * eps
            perturbed[u].append(np.asarray(b) + d)
    losses = np.asarray(jax.jit(jax.vmap(unrolled))(
        {t: np.stack(v) for t, v in perturbed.items()}))
    central = (losses[0::2] - losses[1::2]) / (2 * eps)
    fd, offset = {}, 0
    for t, a in state.alpha.items():
      fd[t] = central[offset:offset + a.size].reshape(a.shape)
      offset += a.size
    assert _rel(exact, fd) < 1e-6
    # The second-order term matters here: first order is far from it.
    first = grad(state, tb, vb, arch_mode='first_order')[0]
    assert _rel(first, exact) > 1e-3


def test_hvp_and_unrolled_second_order_agree():
  with jax.enable_x64(True):
    state, tb, vb, grad, exact = _f64_problem()
    unrolled = grad(state, tb, vb, arch_mode='second_order',
                    second_order_impl='unrolled')[0]
  assert _rel(unrolled, exact) < 1e-10


def test_finite_difference_option_approaches_exact():
  with jax.enable_x64(True):
    state, tb, vb, grad, exact = _f64_problem()
    errs = {r: _rel(grad(state, tb, vb, arch_mode='finite_difference',
                         fd_radius=r)[0], exact)
            for r in (1e-2, 1e-4, 1e-7)}
  print('finite-difference vs exact, relative L2 error by radius:', errs)
  # Converges as the radius shrinks; the paper's radius is far off, because
  # the perturbation crosses ReLU and max-pool kinks (darts.md 7c).
  assert errs[1e-7] < 1e-6
  assert errs[1e-2] > 1e3 * errs[1e-7]


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
  assert int(new.step) == int(state.step)


def test_unknown_arch_mode():
  with pytest.raises(ValueError, match='Unknown arch_mode.*first_order'):
    step_lib.arch_gradient(helpers.make_state(), helpers.batch(1),
                           helpers.batch(2), model=helpers.MODEL,
                           preprocess=helpers.PREP, arch_mode='third_order')
