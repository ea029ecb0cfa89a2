"""The exact hypergradient, through the real optimiser step, in float64.

The exact second-order alpha gradient is compared with central finite
differences of alpha -> L_val(w'(alpha), alpha), where w' is the weights
after the real `weight_step` (the step the binaries take) at alpha, for
inner optimisers whose update Jacobian is and is not a multiple of I.
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


def _rel(a, b):
  a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(a)])
  b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(b)])
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# The inner (weight) optimisers of the exactness tests. 'sgd' is the
# binaries' (momentum, coupled weight decay, clip 5: not active here); its
# update's Jacobian dU/dg is -lr * I, the paper's shortcut. 'sgd_clipped'
# clips at 1e-3, far below the gradient norm, and 'adam' has moment
# estimates: for both dU/dg is not a multiple of I.
INNER_OPTIMIZERS = {
    'sgd': None,  # helpers.make_state's, as the binaries build it.
    'sgd_clipped': optax.chain(optax.clip_by_global_norm(1e-3),
                               optax.add_decayed_weights(3e-4),
                               optax.sgd(0.1, momentum=0.9)),
    'adam': optax.adam(0.01, b1=0.9, b2=0.99),
}


@functools.cache
def _f64_problem(inner='sgd'):
  """A float64 state whose inner optimiser state is non-zero.

  The buffer comes from one optimiser update with a random gradient, as if a
  weight step had been taken (without compiling one).
  """
  with jax.enable_x64(True):
    state = helpers.make_state(seed=3, dtype=jnp.float64, alpha_scale=0.5)
    if INNER_OPTIMIZERS[inner] is not None:
      tx = INNER_OPTIMIZERS[inner]
      state = state.replace(tx=tx, opt_state=tx.init(state.params))
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


def _weight_step(state, batch):
  """The real weight step the binaries take (float64 inputs)."""
  return step_lib.weight_step(state, batch, model=helpers.MODEL,
                              preprocess=helpers.PREP64)


def _central_differences(state, tb, vb, eps=1e-6):
  """Central differences of alpha -> L_val(w'(alpha), alpha), where w' comes
  from the real `weight_step` at alpha (not from `virtual_step`), evaluated
  for every +-eps perturbation of every alpha entry in one call."""
  x_val = helpers.PREP64(jnp.asarray(vb['image']), None, True)
  y_val = jnp.asarray(vb['label'])

  def unrolled(alpha):
    stepped, _ = _weight_step(state.replace(alpha=alpha), tb)
    return step_lib._loss(stepped.params, state.batch_stats, alpha, x_val,
                          y_val, model=helpers.MODEL)[0]

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
  return fd


@pytest.mark.parametrize('inner', sorted(INNER_OPTIMIZERS))
def test_exact_hypergradient_equals_central_differences(inner):
  """Through the real optimiser step: SGD as the binaries run it, SGD with
  the clip active, and Adam. The paper's shortcut dU/dg = -lr * I (what the
  finite-difference mode assumes) would pass only the first."""
  with jax.enable_x64(True):
    state, tb, vb, grad, exact = _f64_problem(inner)
    if inner == 'sgd_clipped':  # The clip really is active.
      x = helpers.PREP64(jnp.asarray(tb['image']), None, True)
      g = jax.grad(step_lib._loss, has_aux=True)(
          state.params, state.batch_stats, state.alpha, x,
          jnp.asarray(tb['label']), model=helpers.MODEL)[0]
      assert optax.global_norm(g) > 100 * 1e-3
    fd = _central_differences(state, tb, vb)
    assert _rel(exact, fd) < 1e-6
    # First order reads neither the inner optimiser nor its state: it is
    # taken from the plain SGD state (same weights, key and step), whose
    # program is compiled once for the three optimisers.
    sgd_state = _f64_problem('sgd')[0]
    # The second-order term matters here: first order is far from it.
    first = grad(sgd_state, tb, vb, arch_mode='first_order')[0]
    assert _rel(first, exact) > 1e-3
    # The paper's approximation at a tiny radius (no kink crossed) converges
    # to the -lr * I shortcut: right for plain SGD only.
    approx = grad(state, tb, vb, arch_mode='finite_difference',
                  fd_radius=1e-7)[0]
    print(f'{inner}: exact vs central differences {_rel(exact, fd):.2e}, '
          f'finite-difference mode at r=1e-7 vs exact {_rel(approx, exact):.2e}')
    if inner == 'sgd':
      assert _rel(approx, exact) < 1e-6
    else:
      assert _rel(approx, exact) > 1e-2


@pytest.mark.parametrize('inner', sorted(INNER_OPTIMIZERS))
def test_virtual_step_is_the_real_weight_step(inner):
  """w'(alpha) = the weights after a real `weight_step` at alpha (same
  batch, same key): momentum, weight decay, clipping, Adam moments."""
  with jax.enable_x64(True):
    state, tb, _, _, _ = _f64_problem(inner)
    x = helpers.PREP64(jnp.asarray(tb['image']), None, True)
    alpha = jax.tree.map(lambda a: 0.7 * a + 0.1, state.alpha)
    virtual = jax.jit(functools.partial(step_lib.virtual_step,
                                        model=helpers.MODEL,
                                        preprocess=helpers.PREP64))(
        state, alpha, {'image': x, 'label': jnp.asarray(tb['label'])})
    real, _ = jax.jit(_weight_step)(state.replace(alpha=alpha), tb)
    chex.assert_trees_all_close(virtual, real.params, rtol=1e-12, atol=1e-15)
    moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), virtual,
                         state.params)
    assert max(jax.tree.leaves(moved)) > 0


def test_running_batch_statistics_do_not_enter_the_hypergradient():
  """Every search pass normalises with its batch's statistics: perturbing
  the running statistics changes neither the hypergradient nor the
  validation loss (README, BatchNorm in the virtual step)."""
  with jax.enable_x64(True):
    state, tb, vb, grad, exact = _f64_problem()
    leaves, treedef = jax.tree.flatten(state.batch_stats)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    perturbed = jax.tree.unflatten(treedef, [
        jnp.abs(l + 3.0 * jax.random.normal(k, l.shape, l.dtype)) + 0.5
        for k, l in zip(keys, leaves)])
    other = state.replace(batch_stats=perturbed)
    g, val_loss = grad(other, tb, vb, arch_mode='second_order')[:2]
    assert _rel(g, exact) < 1e-9
    np.testing.assert_allclose(
        val_loss, grad(state, tb, vb, arch_mode='second_order')[1],
        rtol=1e-12)


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
