"""Shapes and semantics of the candidate ops and the search mixed op."""

import chex
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from nasjax import layers
from nasjax import ops
from nasjax.darts import model

X = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))


def _apply(op, x, train=True):
  variables = op.init(jax.random.key(1), x, train)
  y, _ = op.apply(variables, x, train, mutable=['batch_stats'])
  return y, variables


@pytest.mark.parametrize('name', sorted(ops.OPS))
@pytest.mark.parametrize('stride', [1, 2])
def test_op_shapes(name, stride):
  y, _ = _apply(ops.get(name)(4, stride, False), X)
  chex.assert_shape(y, (2, 8 // stride, 8 // stride, 4))
  chex.assert_tree_all_finite(y)


def test_odd_size_stride_two_rounds_up():
  x = X[:, :7, :7]
  for name in ('sep_conv_3x3', 'dil_conv_5x5', 'max_pool_3x3', 'none'):
    y, _ = _apply(ops.get(name)(4, 2, False), x)
    chex.assert_shape(y, (2, 4, 4, 4))


def test_none_is_zero_and_unknown_op_lists_valid_names():
  y, _ = _apply(ops.get('none')(4, 2, False), X)
  np.testing.assert_array_equal(y, 0.0)
  with pytest.raises(KeyError, match="Unknown op 'sep_conv_9x9'.*sep_conv_3x3"):
    ops.get('sep_conv_9x9')


def test_depthwise_impls_agree_with_grouped_conv():
  k = jax.random.normal(jax.random.key(2), (5, 5, 4))
  for stride in (1, 2):
    for dilation in (1, 2):
      outs = []
      for impl in layers.DEPTHWISE_IMPLS:
        layers.set_depthwise_impl(impl)
        outs.append(layers.depthwise_conv(X, k, stride, dilation))
      layers.set_depthwise_impl('shift')
      for o in outs[1:]:
        np.testing.assert_allclose(o, outs[0], rtol=1e-5, atol=1e-5)


def test_pools_match_reference_semantics():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  avg = layers.avg_pool_3x3(x, 1)
  # Corner: mean of the 4 valid cells (count_include_pad=False).
  assert float(avg[0, 0, 0, 0]) == pytest.approx((0 + 1 + 4 + 5) / 4)
  mx = layers.max_pool_3x3(-x, 1)
  assert float(mx[0, 0, 0, 0]) == 0.0  # Padding never wins.


@pytest.mark.parametrize('stride', [1, 2])
def test_max_pool_equals_reduce_window(stride):
  x = jax.random.normal(jax.random.key(4), (2, 7, 6, 3))

  def reference(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1),
                             (1, stride, stride, 1),
                             ((0, 0), (1, 1), (1, 1), (0, 0)))

  y = layers.max_pool_3x3(x, stride)
  np.testing.assert_array_equal(y, reference(x))
  g = jax.random.normal(jax.random.key(5), y.shape)
  grad = lambda f: jax.grad(lambda x: jnp.sum(f(x, stride) * g))
  np.testing.assert_allclose(grad(layers.max_pool_3x3)(x),
                             grad(lambda x, _: reference(x))(x), atol=1e-6)
  # Ties: as in PyTorch, each window's cotangent goes to its first maximal
  # input in row-major order (here all tied: the top-left valid cell).
  tied = jax.grad(lambda x: jnp.sum(layers.max_pool_3x3(x, 2)))(
      jnp.zeros((1, 3, 3, 1)))
  np.testing.assert_array_equal(tied[0, :, :, 0],
                                [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_batchnorm_running_stats_use_unbiased_variance():
  bn = layers.BatchNorm(affine=False)
  x = jax.random.normal(jax.random.key(3), (4, 2, 2, 3))
  v = bn.init(jax.random.key(0), x, True)
  y, upd = bn.apply(v, x, True, mutable=['batch_stats'])
  n = 16
  var = np.var(np.asarray(x).reshape(n, 3), axis=0, ddof=1)
  np.testing.assert_allclose(upd['batch_stats']['var'], 0.9 + 0.1 * var,
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(y).reshape(n, 3).mean(0), 0, atol=1e-6)


def test_batch_moments_equal_the_two_pass_form_for_any_shift():
  x = 3.0 + jax.random.normal(jax.random.key(4), (4, 3, 3, 5), jnp.float32)
  x64 = np.asarray(x, np.float64).reshape(-1, 5)
  for shift in (jnp.zeros(5), jnp.full(5, 3.0), jnp.linspace(-2, 2, 5)):
    mean, var = layers.batch_moments(x, shift)
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(0), rtol=1e-5)

  def two_pass(x):
    m = jnp.mean(x, (0, 1, 2))
    return m, jnp.mean(jnp.square(x - m), (0, 1, 2))

  # Same derivatives (float64): the shift is a constant.
  with jax.enable_x64(True):
    xd = jnp.asarray(x64.reshape(x.shape))
    ct = jax.random.normal(jax.random.key(5), (2, 5), jnp.float64)
    f = lambda fn: lambda x: jnp.vdot(ct, jnp.stack(fn(x)))
    g1 = jax.grad(f(lambda x: layers.batch_moments(x, jnp.full(5, 2.5))))(xd)
    g2 = jax.grad(f(two_pass))(xd)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)


def test_batch_moments_shift_keeps_float32_accurate_far_from_zero():
  # Mean 1000, std 1: E[x^2] - E[x]^2 unshifted loses ~6 of float32's 7
  # digits; shifted by a nearby constant (as BatchNorm's running mean) it
  # keeps them.
  x = 1000.0 + jax.random.normal(jax.random.key(6), (8, 4, 4, 3), jnp.float32)
  true_var = np.asarray(x, np.float64).reshape(-1, 3).var(0)
  _, shifted = layers.batch_moments(x, jnp.full(3, 999.5))
  _, unshifted = layers.batch_moments(x, jnp.zeros(3))
  np.testing.assert_allclose(shifted, true_var, rtol=1e-5)
  assert np.max(np.abs(unshifted / true_var - 1)) > 1e-3


@pytest.mark.parametrize('k', range(8))
def test_mixed_op_one_hot_equals_that_op(k):
  prims = model.darts_cell.PRIMITIVES
  mixed = model.MixedOp(prims, 4, 1)
  w = jnp.eye(len(prims))[k]
  v = mixed.init(jax.random.key(1), X, w, True)
  y, _ = mixed.apply(v, X, w, True, mutable=['batch_stats'])
  name = prims[k]
  op = ops.get(name)(4, 1, False)
  sub = {c: v[c][name] for c in v if name in v[c]}
  expected, _ = op.apply(sub, X, True, mutable=['batch_stats']) if sub else (
      op.apply({}, X, True), None)
  if 'pool' in name:
    expected = layers.BatchNorm(False).apply(
        {'batch_stats': v['batch_stats'][f'{name}_bn']}, expected, True,
        mutable=['batch_stats'])[0]
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
