"""The DARTS candidate operations, as Flax modules in a name -> factory registry.

Definitions follow the reference code (quark0/darts `cnn/operations.py`; facts in
docs/reference_figures.md 1): ReLU-Conv-BN order, convolutions without
bias, separable convolutions applied twice with the stride on the first
depthwise conv only, dilated convolutions with dilation 2, FactorizedReduce
for a stride-2 skip, and a zero op that respects the stride.

Every factory has the reference signature `(C, stride, affine) -> nn.Module`
(plus Flax module keyword arguments such as `name`),
and every module is called as `op(x, train)` on `[B, H, W, C]` input. Search
cells add an affine-free BatchNorm after the pooling ops (see
`nasjax.darts.model.MixedOp`); evaluation cells use the ops as they are.

Synopsis:

  op = ops.get('sep_conv_3x3')(16, stride=2, affine=False)
  variables = op.init(rng, x, train=True)
  y, updates = op.apply(variables, x, train=True, mutable=['batch_stats'])
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasjax import layers


class Zero(nn.Module):
  """Multiplies by zero: the `none` op. Stride 2 subsamples first."""
  stride: int = 1

  def __call__(self, x, train=False):
    del train
    return jnp.zeros_like(x[:, ::self.stride, ::self.stride, :])


class Identity(nn.Module):

  def __call__(self, x, train=False):
    del train
    return x


class Pool(nn.Module):
  """3x3 max or average pool (padding 1, average excludes padding)."""
  kind: str
  stride: int = 1

  def __call__(self, x, train=False):
    del train
    if self.kind == 'max':
      return layers.max_pool_3x3(x, self.stride)
    return layers.avg_pool_3x3(x, self.stride)


class ReLUConvBN(nn.Module):
  """ReLU, k x k conv (k = 1 is a pointwise einsum), BatchNorm."""
  c_out: int
  kernel_size: int = 1
  stride: int = 1
  affine: bool = True

  @nn.compact
  def __call__(self, x, train):
    c_in, k = x.shape[-1], self.kernel_size
    x = jax.nn.relu(x)
    if k == 1 and self.stride == 1:
      w = self.param('conv', layers.torch_init(c_in), (c_in, self.c_out))
      x = layers.pointwise_conv(x, w)
    else:
      w = self.param('conv', layers.torch_init(c_in * k * k),
                     (k, k, c_in, self.c_out))
      x = layers.conv2d(x, w, self.stride)
    return layers.BatchNorm(self.affine, name='bn')(x, train)


def _relu_dw_pw_bn(module: nn.Module, x, train, *, kernel_size, stride,
                   dilation, c_out, affine, suffix=''):
  """ReLU, depthwise k x k, 1x1 conv, BN: the block of SepConv and DilConv.

  Declares `dw{suffix}`, `pw{suffix}` and `bn{suffix}` in `module`.
  """
  c, k = x.shape[-1], kernel_size
  x = jax.nn.relu(x)
  dw = module.param(f'dw{suffix}', layers.torch_init(k * k), (k, k, c))
  x = layers.depthwise_conv(x, dw, stride, dilation)
  pw = module.param(f'pw{suffix}', layers.torch_init(c), (c, c_out))
  x = layers.pointwise_conv(x, pw)
  return layers.BatchNorm(affine, name=f'bn{suffix}')(x, train)


class SepConv(nn.Module):
  """[ReLU, depthwise k x k, 1x1, BN] twice; stride on the first only."""
  c_out: int
  kernel_size: int
  stride: int = 1
  affine: bool = True

  @nn.compact
  def __call__(self, x, train):
    block = lambda x, stride, c_out, suffix: _relu_dw_pw_bn(
        self, x, train, kernel_size=self.kernel_size, stride=stride,
        dilation=1, c_out=c_out, affine=self.affine, suffix=suffix)
    x = block(x, self.stride, x.shape[-1], '1')
    return block(x, 1, self.c_out, '2')


class DilConv(nn.Module):
  """ReLU, depthwise k x k with dilation, 1x1, BN."""
  c_out: int
  kernel_size: int
  stride: int = 1
  dilation: int = 2
  affine: bool = True

  @nn.compact
  def __call__(self, x, train):
    return _relu_dw_pw_bn(self, x, train, kernel_size=self.kernel_size,
                          stride=self.stride, dilation=self.dilation,
                          c_out=self.c_out, affine=self.affine)


class FactorizedReduce(nn.Module):
  """ReLU, two 1x1 stride-2 convs (the second shifted by one pixel), concat, BN.

  Halves height and width; `c_out` must be even.
  """
  c_out: int
  affine: bool = True

  @nn.compact
  def __call__(self, x, train):
    layers.check_even(self.c_out, 'FactorizedReduce')
    c_in, half = x.shape[-1], self.c_out // 2
    x = jax.nn.relu(x)
    w1 = self.param('conv1', layers.torch_init(c_in), (c_in, half))
    w2 = self.param('conv2', layers.torch_init(c_in), (c_in, half))
    # Stride 2 on x samples even pixels; on x[1:, 1:] it samples odd ones.
    y = jnp.concatenate([
        layers.pointwise_conv(x[:, ::2, ::2, :], w1),
        layers.pointwise_conv(x[:, 1::2, 1::2, :], w2)
    ], axis=-1)
    return layers.BatchNorm(self.affine, name='bn')(y, train)


class Conv7x1_1x7(nn.Module):  # pylint: disable=invalid-name
  """ReLU, (1, 7) conv, (7, 1) conv, BN: used by the AmoebaNet genotype."""
  c_out: int
  stride: int = 1
  affine: bool = True

  @nn.compact
  def __call__(self, x, train):
    c, s = x.shape[-1], self.stride
    x = jax.nn.relu(x)
    w1 = self.param('conv1', layers.torch_init(7 * c), (1, 7, c, c))
    w2 = self.param('conv2', layers.torch_init(7 * c), (7, 1, c, self.c_out))
    dn = ('NHWC', 'HWIO', 'NHWC')
    x = jax.lax.conv_general_dilated(x, w1, (1, s), ((0, 0), (3, 3)),
                                     dimension_numbers=dn)
    x = jax.lax.conv_general_dilated(x, w2, (s, 1), ((3, 3), (0, 0)),
                                     dimension_numbers=dn)
    return layers.BatchNorm(self.affine, name='bn')(x, train)


def _skip(c, stride, affine, **kw):
  return Identity(**kw) if stride == 1 else FactorizedReduce(c, affine, **kw)


OpFactory = Callable[..., nn.Module]

# name -> factory(C, stride, affine, **module_kwargs). The first eight are the
# DARTS PRIMITIVES, in order; the last two appear only in published genotypes.
OPS: dict[str, OpFactory] = {
    'none': lambda c, stride, affine, **kw: Zero(stride, **kw),
    'max_pool_3x3': lambda c, stride, affine, **kw: Pool('max', stride, **kw),
    'avg_pool_3x3': lambda c, stride, affine, **kw: Pool('avg', stride, **kw),
    'skip_connect': _skip,
    'sep_conv_3x3':
        lambda c, stride, affine, **kw: SepConv(c, 3, stride, affine, **kw),
    'sep_conv_5x5':
        lambda c, stride, affine, **kw: SepConv(c, 5, stride, affine, **kw),
    'dil_conv_3x3':
        lambda c, stride, affine, **kw: DilConv(c, 3, stride, 2, affine, **kw),
    'dil_conv_5x5':
        lambda c, stride, affine, **kw: DilConv(c, 5, stride, 2, affine, **kw),
    'sep_conv_7x7':
        lambda c, stride, affine, **kw: SepConv(c, 7, stride, affine, **kw),
    'conv_7x1_1x7':
        lambda c, stride, affine, **kw: Conv7x1_1x7(c, stride, affine, **kw),
}


def get(name: str) -> OpFactory:
  """Returns the factory for op `name`; unknown names list the valid ones."""
  try:
    return OPS[name]
  except KeyError:
    raise KeyError(f'Unknown op {name!r}. Valid ops: {sorted(OPS)}.') from None
