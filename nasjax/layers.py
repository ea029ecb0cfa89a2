"""Low-level layers with the exact semantics of the DARTS reference code.

The reference is PyTorch; these functions reproduce its conventions in NHWC:

* symmetric padding (PyTorch `padding=p`), so odd kernels with stride 2 give
  `ceil(H / 2)` outputs;
* BatchNorm with eps 1e-5, running statistics updated as
  `0.9 * running + 0.1 * batch`, and the *unbiased* batch variance in the
  running variance (the normalisation itself uses the biased one);
* average pooling with `count_include_pad=False`; max pooling pads with -inf.

Depthwise convolutions are written as a sum of shifted, scaled copies of the
input ("shift-and-add") rather than as a grouped `lax.conv`: on XLA's CPU
backend a grouped convolution is about 4x slower per op for the shapes of a
DARTS search (38 ms vs 9.5 ms forward + backward at [32, 32, 32, 8]), and a
dense convolution with a block-diagonal kernel made a whole search step 13x
slower (35 s vs 2.7 s at C=8, 5 cells, batch 32). On GPU and TPU the grouped
form is the natural choice (`set_depthwise_impl('grouped')`). 1x1
convolutions are einsums.

Synopsis:

  y = depthwise_conv(x, kernel, stride=1, dilation=2)   # kernel [k, k, C]
  y = pointwise_conv(x, kernel)                         # kernel [C_in, C_out]
  y = BatchNorm(affine=False)(x, train=True)
"""

import contextlib
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax



def torch_init(fan_in: int):
  """PyTorch's default conv/linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / fan_in**0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _out_size(size: int, kernel: int, stride: int, dilation: int) -> int:
  pad = dilation * (kernel - 1) // 2
  return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


# How depthwise convolutions are computed; see `depthwise_conv`. Set with
# `set_depthwise_impl` before tracing (it is read at trace time).
_DEPTHWISE_IMPL = ['shift']
DEPTHWISE_IMPLS = ('grouped', 'shift', 'loop')


@contextlib.contextmanager
def depthwise_impl(name: str):
  """Traces depthwise convolutions with impl `name` inside the block."""
  old = _DEPTHWISE_IMPL[0]
  set_depthwise_impl(name)
  try:
    yield
  finally:
    _DEPTHWISE_IMPL[0] = old


def depthwise_impl_name() -> str:
  """The impl depthwise convolutions are traced with now."""
  return _DEPTHWISE_IMPL[0]


def set_depthwise_impl(name: str) -> None:
  if name not in DEPTHWISE_IMPLS:
    raise ValueError(f'Unknown depthwise impl {name!r}; valid: '
                     f'{DEPTHWISE_IMPLS}.')
  _DEPTHWISE_IMPL[0] = name


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int = 1,
                   dilation: int = 1) -> jax.Array:
  """Depthwise k x k convolution, symmetric padding, no bias.

  Args:
    x: [B, H, W, C] input.
    kernel: [k, k, C] one filter per channel (k odd).
    stride: spatial stride.
    dilation: spatial dilation.

  Returns:
    [B, H', W', C] with H' = ceil(H / stride) for odd k.
  """
  k = kernel.shape[0]
  _, h, w, c = x.shape
  pad = dilation * (k - 1) // 2
  ho, wo = _out_size(h, k, stride, dilation), _out_size(w, k, stride, dilation)
  impl = _DEPTHWISE_IMPL[0]
  if impl == 'grouped':
    x, kernel = _same_dtype(x, kernel)
    return lax.conv_general_dilated(
        x, kernel[:, :, None, :], (stride, stride), ((pad, pad), (pad, pad)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=c)
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  if impl == 'loop':
    def body(t, out):
      i, j = t // k, t % k
      tap = lax.dynamic_slice(xp, (0, i * dilation, j * dilation, 0),
                              (xp.shape[0], stride * (ho - 1) + 1,
                               stride * (wo - 1) + 1, c))
      return out + tap[:, ::stride, ::stride, :] * kernel[i, j]
    return lax.fori_loop(0, k * k, body,
                         jnp.zeros((x.shape[0], ho, wo, c),
                                   jnp.result_type(x, kernel)))
  out = None
  for i in range(k):
    for j in range(k):
      y0, x0 = i * dilation, j * dilation
      tap = lax.slice(
          xp, (0, y0, x0, 0),
          (xp.shape[0], y0 + stride * (ho - 1) + 1, x0 + stride * (wo - 1) + 1,
           xp.shape[3]), (1, stride, stride, 1))
      term = tap * kernel[i, j]
      out = term if out is None else out + term
  return out


def _same_dtype(x, kernel):
  """Both at their promoted dtype, as the other impls (products) give:
  lax convolutions refuse mixed dtypes (e.g. float64 weights, float32
  images in the float64 gradient checks)."""
  dtype = jnp.result_type(x, kernel)
  return x.astype(dtype), kernel.astype(dtype)


def pointwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """1x1 convolution: [B, H, W, C_in] x [C_in, C_out] -> [B, H, W, C_out]."""
  return jnp.einsum('bhwc,cd->bhwd', x, kernel)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """Dense k x k convolution with symmetric padding (k - 1) // 2, no bias."""
  k = kernel.shape[0]
  pad = (k - 1) // 2
  x, kernel = _same_dtype(x, kernel)
  return lax.conv_general_dilated(
      x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@jax.custom_vjp
def _conv2d_canonical_backward(x, kernel):
  return conv2d(x, kernel)


def _ccb_fwd(x, kernel):
  return conv2d(x, kernel), (x, kernel)


def _ccb_bwd(res, ct):
  """Both gradients of a stride-1 'SAME' convolution as forward
  convolutions in NHWC/HWIO: the input's, `ct` through the flipped kernel
  with its in and out channels swapped; the kernel's, the input with its
  channels as the batch ([C_in, H, W, B]) through `ct` as a kernel
  ([H, W, B, C_out]), which gives [C_in, k, k, C_out]."""
  x, kernel = res
  pad = (kernel.shape[0] - 1) // 2
  dims = ('NHWC', 'HWIO', 'NHWC')
  same = ((pad, pad), (pad, pad))
  dx = lax.conv_general_dilated(
      ct, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2), (1, 1), same,
      dimension_numbers=dims)
  dk = lax.conv_general_dilated(
      x.transpose(3, 1, 2, 0), ct.transpose(1, 2, 0, 3), (1, 1), same,
      dimension_numbers=dims)
  return dx, dk.transpose(1, 2, 0, 3)


_conv2d_canonical_backward.defvjp(_ccb_fwd, _ccb_bwd)


def conv2d_in_switch(x: jax.Array, kernel: jax.Array,
                     stride: int = 1) -> jax.Array:
  """`conv2d` for a branch of a traced `lax.switch`.

  XLA:CPU leaves the backward convolutions of a conditional's branch in
  the layout autodiff gives them, off its fast path (the canonicalisation
  that transposes them for the fast kernels is not applied there): for a
  3x3 convolution at [64, 32, 32, 16], forward and backward, 0.40 s in a
  branch against 0.009 s outside. On CPU the backward pass here is written
  as two forward convolutions in the canonical layout, 0.008 s in a
  branch, with the same values as autodiff's (`benchmarks/README.md`).
  Off CPU, at a stride other than 1 or an even kernel it is `conv2d`.
  Outside switches use `conv2d`: a custom VJP has no forward-mode rule.
  """
  if (jax.default_backend() != 'cpu' or stride != 1 or
      kernel.shape[0] % 2 == 0):
    return conv2d(x, kernel, stride)
  x, kernel = _same_dtype(x, kernel)
  return _conv2d_canonical_backward(x, kernel)


def _max_select(taps):
  """Elementwise max of `taps`; the gradient goes to the first maximal tap.

  The value is the max; autodiff sees a selection of one tap per element by
  masks held constant (as they are almost everywhere), so the backward pass
  is a few fused selects instead of the chain of `maximum` gradients, and a
  forward-over-reverse pass through it stays cheap.
  """
  best = lax.stop_gradient(functools.reduce(jnp.maximum, taps))
  claimed = jnp.zeros(best.shape, bool)
  out = jnp.zeros_like(best)
  for tap in taps:
    wins = (tap == best) & ~claimed
    claimed = claimed | wins
    out = out + jnp.where(wins, tap, 0.0)
  return out


def max_pool_3x3(x: jax.Array, stride: int) -> jax.Array:
  """3x3 max pool, padding 1 (padded cells never win), given stride.

  Separable (the max over 3 columns, then over 3 rows) and built from shifted
  slices: on XLA:CPU the gradient of `lax.reduce_window` (a select-and-
  scatter) is several times slower, and so was a 9-tap chain of `maximum`
  (in a C=8 search step: 0.31 s -> 0.15 s per weight step, 3.1 s -> 1.2 s
  per exact second-order step with max pooling the only costly op). The
  value equals `reduce_window`'s; at ties the gradient goes, as in PyTorch,
  to the first maximal cell of the window in row-major order.
  """
  _, h, w, c = x.shape
  ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-jnp.inf)
  b = xp.shape[0]
  rows = _max_select([
      lax.slice(xp, (0, 0, j, 0), (b, h + 2, j + stride * (wo - 1) + 1, c),
                (1, 1, stride, 1)) for j in range(3)])
  return _max_select([
      lax.slice(rows, (0, i, 0, 0), (b, i + stride * (ho - 1) + 1, wo, c),
                (1, stride, 1, 1)) for i in range(3)])


def avg_pool_3x3(x: jax.Array, stride: int) -> jax.Array:
  """3x3 average pool, padding 1, padded cells not counted."""
  window, strides = (1, 3, 3, 1), (1, stride, stride, 1)
  padding = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = lax.reduce_window(x, 0.0, lax.add, window, strides, padding)
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  count = lax.reduce_window(ones, 0.0, lax.add, window, strides, padding)
  return total / count


def batch_moments(x: jax.Array, shift: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-channel mean and biased variance of x over all axes but the last.

  One pass: the mean of [x - shift, (x - shift)^2] in one reduction, then
  var = E[d^2] - E[d]^2 with d = x - shift. On a batch sharded over devices
  that is one cross-device sum forward (and one backward) instead of the
  two dependent sums of the two-pass form (mean, then the mean of squared
  deviations): on 2 CPU devices a search mixed op's forward compiles to 4
  all-reduces instead of 12, forward + backward to 10 instead of 24, and a
  C=8 second-order step ran 12 % faster (benchmarks/README.md). The value and its
  derivatives are those of the two-pass form for any constant `shift`; the
  shift only sets the rounding: the relative error of E[d^2] - E[d]^2 is
  about eps * (1 + (E[d] / std)^2), so a shift near the batch mean
  (BatchNorm passes its running mean) keeps float32 accurate where the
  unshifted one-pass form (Flax's `use_fast_variance`) cancels, e.g. a
  channel with mean 1000 and std 1.

  Args:
    x: [..., C] activations.
    shift: [C] a constant (no gradient flows into it).

  Returns:
    (mean [C], var [C]), var >= 0.
  """
  axes = tuple(range(x.ndim - 1))
  c = x.shape[-1]
  shift = shift.astype(x.dtype)
  d = x - shift
  moments = jnp.mean(jnp.concatenate([d, jnp.square(d)], axis=-1), axes)
  mean_d = moments[:c]
  var = jnp.maximum(moments[c:] - jnp.square(mean_d), 0.0)
  return shift + mean_d, var


class BatchNorm(nn.Module):
  """BatchNorm over all axes but the last, with PyTorch's conventions.

  In training mode it normalises with the batch statistics, computed in one
  pass shifted by the running mean (`batch_moments`: the running statistics
  change only the rounding, never the value), and updates the running ones,
  except while the module is being initialised.

  With `two_pass`, the batch variance is the mean of squared deviations
  from the batch mean (two dependent reductions): exact whatever the running
  mean, for networks whose activations change scale from step to step (a
  supernet with one sampled op per edge: a cell of skip connections
  multiplies its input by 4, so after 15 cells the scale of a batch can
  differ from that of the previous one by 1e9, and the one-pass form
  cancels to a variance of 0).

  Attributes:
    affine: learn a per-channel scale and shift (search-time ops use False).
    momentum: weight of the new batch statistic in the running average.
    epsilon: added to the variance.
    two_pass: compute the batch variance in two passes (above).
  """
  affine: bool = True
  momentum: float = 0.1
  epsilon: float = 1e-5
  two_pass: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = x.shape[-1:]
    ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, features)
    ra_var = self.variable('batch_stats', 'var', jnp.ones, features)
    if train:
      if self.two_pass:
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axes)
        var = jnp.mean(jnp.square(x - mean), axes)
      else:
        mean, var = batch_moments(x, lax.stop_gradient(ra_mean.value))
      if not self.is_initializing():
        n = x.size // x.shape[-1]
        unbiased = var * (n / max(n - 1, 1))
        m = self.momentum
        ra_mean.value = (1 - m) * ra_mean.value + m * lax.stop_gradient(mean)
        ra_var.value = (1 - m) * ra_var.value + m * lax.stop_gradient(unbiased)
    else:
      mean, var = ra_mean.value, ra_var.value
    y = (x - mean) * lax.rsqrt(var + self.epsilon)
    if self.affine:
      scale = self.param('scale', nn.initializers.ones, features)
      bias = self.param('bias', nn.initializers.zeros, features)
      y = y * scale + bias
    return y


def param_count(params) -> int:
  """Number of scalars in a parameter pytree."""
  return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))


def check_even(channels: int, what: str) -> None:
  if channels % 2:
    raise ValueError(f'{what} needs an even channel count, got {channels}.')


def strided_size(sizes: Sequence[int], stride: int) -> tuple[int, ...]:
  return tuple((s - 1) // stride + 1 for s in sizes)
