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


def test_every_depthwise_impl_takes_mixed_dtypes_like_a_product():
  """float64 weights on float32 images (the float64 gradient checks) give
  float64 in every impl, as the shift impl's products do; a lax convolution
  alone refuses mixed dtypes."""
  with jax.enable_x64(True):
    k = jax.random.normal(jax.random.key(2), (3, 3, 4), jnp.float64)
    w = jax.random.normal(jax.random.key(3), (3, 3, 4, 2), jnp.float64)
    outs = []
    for impl in layers.DEPTHWISE_IMPLS:
      layers.set_depthwise_impl(impl)
      outs.append(layers.depthwise_conv(X, k, 2))
    layers.set_depthwise_impl('shift')
    for o in outs:
      assert o.dtype == jnp.float64
      np.testing.assert_allclose(o, outs[0], rtol=1e-6)
    assert layers.conv2d(X, w).dtype == jnp.float64


@pytest.mark.parametrize('k', [1, 3, 5])
def test_conv_in_a_switch_has_autodiffs_gradients(k):
  """`layers.conv2d_in_switch` (its backward pass hand-written as forward
  convolutions, for XLA:CPU's fast path inside conditionals) gives the
  values and both gradients of autodiff through `conv2d`, in float64,
  inside a traced `lax.switch` as the supernets use it; 3 in, 5 out
  channels and a non-square image, so a transposed or unflipped kernel
  shows."""
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(2), (2, 6, 5, 3), jnp.float64)
    w = jax.random.normal(jax.random.key(3), (k, k, 3, 5), jnp.float64)
    ct = jax.random.normal(jax.random.key(4), (2, 6, 5, 5), jnp.float64)

    def loss(conv, index):
      return lambda x, w: jnp.sum(ct * lax.switch(
          index, [lambda x, w: jnp.zeros(ct.shape, x.dtype), conv], x, w))

    want = jax.grad(loss(layers.conv2d, 1), (0, 1))(x, w)
    got = jax.jit(jax.grad(loss(layers.conv2d_in_switch, 1), (0, 1)))(
        x, w)
    for g, h in zip(got, want):
      np.testing.assert_allclose(g, h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layers.conv2d_in_switch(x, w),
                               layers.conv2d(x, w), rtol=1e-12)


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


# ------------------------------------------------------------------------
# Every op against an independent reference: the reference code's
# definitions (docs/reference_figures.md 1) written with plain lax
# convolutions and numpy loops, on perturbed (non-initial) parameters, in
# training mode, for stride 1 and 2.

_DN = ('NHWC', 'HWIO', 'NHWC')


def _ref_bn(x, p):
  x = np.asarray(x, np.float64)
  mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))  # Biased, as PyTorch.
  return (x - mean) / np.sqrt(var + 1e-5) * p['scale'] + p['bias']


def _ref_depthwise(x, k, stride, dilation):
  """PyTorch Conv2d(groups=C, padding=dilation * (k - 1) // 2)."""
  pad = dilation * (k.shape[0] - 1) // 2
  return lax.conv_general_dilated(
      x, k[:, :, None, :], (stride, stride), ((pad, pad), (pad, pad)),
      rhs_dilation=(dilation, dilation), dimension_numbers=_DN,
      feature_group_count=x.shape[-1])


def _ref_conv(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding,
                                  dimension_numbers=_DN)


def _relu(x):
  return np.maximum(np.asarray(x), 0.0)


def _ref_pool(x, stride, kind):
  """3x3, padding 1, by loops: max ignores padding, the average excludes it
  from the count (count_include_pad=False)."""
  x = np.asarray(x, np.float64)
  b, h, w, c = x.shape
  ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
  out = np.zeros((b, ho, wo, c))
  for i in range(ho):
    for j in range(wo):
      r0, c0 = i * stride - 1, j * stride - 1
      win = x[:, max(r0, 0):r0 + 3, max(c0, 0):c0 + 3, :]
      out[:, i, j] = (win.max((1, 2)) if kind == 'max' else win.mean((1, 2)))
  return out


def _ref_sep(x, p, stride, k):
  del k
  y = _ref_depthwise(_relu(x), p['dw1'], stride, 1)
  y = _ref_bn(np.einsum('bhwc,cd->bhwd', y, p['pw1']), p['bn1'])
  y = _ref_depthwise(_relu(y), p['dw2'], 1, 1)
  return _ref_bn(np.einsum('bhwc,cd->bhwd', y, p['pw2']), p['bn2'])


def _ref_dil(x, p, stride, k):
  del k
  y = _ref_depthwise(_relu(x), p['dw'], stride, 2)
  return _ref_bn(np.einsum('bhwc,cd->bhwd', y, p['pw']), p['bn'])


def _ref_skip(x, p, stride, k):
  del k
  if stride == 1:
    return np.asarray(x)
  # FactorizedReduce: two 1x1 stride-2 convs, the second on x[1:, 1:].
  r = _relu(x)
  w1, w2 = p['conv1'][None, None], p['conv2'][None, None]
  y = np.concatenate([_ref_conv(r, w1, (2, 2), 'VALID'),
                      _ref_conv(r[:, 1:, 1:], w2, (2, 2), 'VALID')], -1)
  return _ref_bn(y, p['bn'])


def _ref_conv_7x1_1x7(x, p, stride, k):
  del k
  y = _ref_conv(_relu(x), p['conv1'], (1, stride), ((0, 0), (3, 3)))
  y = _ref_conv(y, p['conv2'], (stride, 1), ((3, 3), (0, 0)))
  return _ref_bn(y, p['bn'])


_REFERENCES = {
    'none': lambda x, p, s, k: np.zeros_like(np.asarray(x)[:, ::s, ::s]),
    'max_pool_3x3': lambda x, p, s, k: _ref_pool(x, s, 'max'),
    'avg_pool_3x3': lambda x, p, s, k: _ref_pool(x, s, 'avg'),
    'skip_connect': _ref_skip,
    'sep_conv_3x3': _ref_sep, 'sep_conv_5x5': _ref_sep,
    'sep_conv_7x7': _ref_sep,
    'dil_conv_3x3': _ref_dil, 'dil_conv_5x5': _ref_dil,
    'conv_7x1_1x7': _ref_conv_7x1_1x7,
}


def test_every_op_has_an_independent_reference():
  assert set(_REFERENCES) == set(ops.OPS)


@pytest.mark.parametrize('size', [8, 7])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('name', sorted(ops.OPS))
def test_op_equals_independent_reference(name, stride, size):
  if name == 'skip_connect' and stride == 2 and size % 2:
    pytest.skip('FactorizedReduce is defined for even sizes only (its two '
                'paths disagree in shape otherwise, in the reference too)')
  x = jax.random.normal(jax.random.key(6), (2, size, size, 4))
  op = ops.get(name)(4, stride, True)
  variables = op.init(jax.random.key(1), x, True)
  # Perturb every parameter (BN scale and bias included), so that a
  # misplaced or missing parameter shows.
  leaves, treedef = jax.tree.flatten(variables.get('params', {}))
  keys = jax.random.split(jax.random.key(2), max(len(leaves), 1))
  params = jax.tree.unflatten(treedef, [
      l + 0.3 * jax.random.normal(k, l.shape) for k, l in zip(keys, leaves)])
  y, _ = op.apply({**variables, 'params': params}, x, True,
                  mutable=['batch_stats'])
  host = jax.tree.map(np.asarray, params)
  k = int(name[-1]) if name[-1].isdigit() else 0
  expected = _REFERENCES[name](x, host, stride, k)
  assert y.shape == expected.shape
  np.testing.assert_allclose(y, expected, rtol=2e-4, atol=2e-4)
