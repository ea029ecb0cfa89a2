"""Discrete networks built from a genotype, for training from scratch.

The DARTS evaluation networks (reference `cnn/model.py`; facts in
docs/reference_figures.md 2), for any `genotype.Genotype`: the
published ones (`genotype.ZOO`), a search's `genotype.json`, or the papers'
notation.

* `Cell`: inputs preprocessed (FactorizedReduce after a reduction cell, else
  ReLU-1x1 conv-BN), node i = op(state a) + op(state b) as the genotype says,
  output = concatenation of the `concat` states. All BatchNorms are affine.
  Stride 2 applies to ops reading the two inputs of a reduction cell.
* Drop-path (`drop_path`): in training, each op's output except the identity
  skip is multiplied per example by Bernoulli(1 - p) / (1 - p). `p` is a
  traced argument, so the reference's linear ramp over epochs never retraces.
* `NetworkCIFAR`: 3x3 stem to 3C, `layers` cells with reductions at 1/3 and
  2/3 of the depth, an auxiliary head on the output of the 2/3 cell (training
  only), global average pool, linear classifier.
* `NetworkImageNet`: the mobile-setting network: two stride-2 stems, 14 cells,
  auxiliary head without BN after its 2x2 conv (as in the reference).

Parameters are laid out so that everything of the auxiliary head sits under
`params['aux_head']`; the papers' parameter counts exclude it
(`param_count_without_aux`).

Synopsis:

  net = NetworkCIFAR(genotype.get('DARTS_V2'), channels=36, layers=20)
  variables = net.init({'params': k1, 'drop_path': k2}, x, train=True)
  (logits, aux), updates = net.apply(variables, x, train=True,
      drop_path_prob=0.1, rngs={'drop_path': k3}, mutable=['batch_stats'])
  logits = net.apply(variables, x, train=False)
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from nasjax import genotype as genotype_lib
from nasjax import layers
from nasjax import ops


def drop_path(x: jax.Array, drop_prob: jax.Array, rng: jax.Array) -> jax.Array:
  """Zeroes whole examples with probability drop_prob, scales the rest up."""
  keep = 1.0 - drop_prob
  mask = jax.random.bernoulli(rng, keep, (x.shape[0], 1, 1, 1))
  return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


def _avg_pool_valid(x: jax.Array, size: int, stride: int) -> jax.Array:
  window, strides = (1, size, size, 1), (1, stride, stride, 1)
  total = lax.reduce_window(x, 0.0, lax.add, window, strides, 'VALID')
  return total / (size * size)


class Cell(nn.Module):
  """One discrete cell of a genotype.

  Attributes:
    pairs: (op, input state) pairs, two per intermediate node.
    concat: states concatenated into the output.
    channels: C, channels of every node.
    reduction: whether this cell halves the resolution.
    reduction_prev: whether the previous cell did (s0 is then at twice the
      resolution of s1).
  """
  pairs: tuple[tuple[str, int], ...]
  concat: tuple[int, ...]
  channels: int
  reduction: bool
  reduction_prev: bool

  @nn.compact
  def __call__(self, s0, s1, train: bool, drop_prob=None):
    c = self.channels
    if self.reduction_prev:
      s0 = ops.FactorizedReduce(c, name='preprocess0')(s0, train)
    else:
      s0 = ops.ReLUConvBN(c, name='preprocess0')(s0, train)
    s1 = ops.ReLUConvBN(c, name='preprocess1')(s1, train)
    states = [s0, s1]
    for node in range(len(self.pairs) // 2):
      out = 0.0
      for k in (2 * node, 2 * node + 1):
        name, src = self.pairs[k]
        stride = 2 if self.reduction and src < 2 else 1
        h = ops.get(name)(c, stride, True, name=f'op{k}')(states[src], train)
        identity = name == 'skip_connect' and stride == 1
        if train and drop_prob is not None and not identity:
          h = drop_path(h, drop_prob, self.make_rng('drop_path'))
        out = out + h
      states.append(out)
    return jnp.concatenate([states[i] for i in self.concat], axis=-1)


class AuxiliaryHead(nn.Module):
  """ReLU, 5x5 avg pool, 1x1 conv to 128, BN, ReLU, conv to 768, [BN], ReLU, FC.

  Attributes:
    num_classes: classifier outputs.
    pool_stride: 3 for CIFAR (8x8 -> 2x2), 2 for ImageNet (7x7 -> 2x2).
    second_bn: CIFAR has a BN after the 768-channel conv; the reference's
      ImageNet head does not.
  """
  num_classes: int
  pool_stride: int
  second_bn: bool

  @nn.compact
  def __call__(self, x, train: bool):
    if min(x.shape[1:3]) < 5:
      raise ValueError(
          f'The auxiliary head pools 5x5 windows but its input (the output of '
          f'the second reduction cell) is {x.shape[1]}x{x.shape[2]}; use '
          'larger images or set auxiliary=False (config.model.auxiliary).')
    x = _avg_pool_valid(jax.nn.relu(x), 5, self.pool_stride)
    c = x.shape[-1]
    x = layers.pointwise_conv(
        x, self.param('conv1', layers.torch_init(c), (c, 128)))
    x = jax.nn.relu(layers.BatchNorm(name='bn1')(x, train))
    kernel = self.param('conv2', layers.torch_init(128 * 4), (2, 2, 128, 768))
    x = lax.conv_general_dilated(x, kernel, (1, 1), 'VALID',
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    if self.second_bn:
      x = layers.BatchNorm(name='bn2')(x, train)
    x = jax.nn.relu(x).reshape(x.shape[0], -1)
    return _classifier(x, self.num_classes)


def _classifier(x, num_classes):
  return nn.Dense(num_classes, kernel_init=layers.torch_init(x.shape[-1]),
                  bias_init=layers.torch_init(x.shape[-1]),
                  name='classifier')(x)


class _CellStack(nn.Module):
  """The cells of a network, with the auxiliary head after cell `aux_at`."""
  genotype: genotype_lib.Genotype
  channels: int
  layers: int
  reductions: tuple[int, ...]
  reduction_prev: bool
  num_classes: int
  auxiliary: bool
  aux_pool_stride: int
  aux_second_bn: bool

  @nn.compact
  def __call__(self, s0, s1, train, drop_prob):
    g, c = self.genotype, self.channels
    reduction_prev, aux = self.reduction_prev, None
    for i in range(self.layers):
      reduction = i in self.reductions
      c = 2 * c if reduction else c
      pairs, concat = ((g.reduce, g.reduce_concat) if reduction else
                       (g.normal, g.normal_concat))
      s0, s1 = s1, Cell(pairs, concat, c, reduction, reduction_prev,
                        name=f'cell{i}')(s0, s1, train, drop_prob)
      reduction_prev = reduction
      if self.auxiliary and train and i == self.reductions[-1]:
        aux = AuxiliaryHead(self.num_classes, self.aux_pool_stride,
                            self.aux_second_bn, name='aux_head')(s1, train)
    return s1, aux


class NetworkCIFAR(nn.Module):
  """The DARTS CIFAR evaluation network for a genotype.

  Attributes:
    genotype: the cells.
    channels: C (36 in the paper); the stem has 3C channels.
    num_classes: classifier outputs.
    layers: number of cells (20 in the paper).
    auxiliary: build the auxiliary head (used in training only).
  """
  genotype: genotype_lib.Genotype
  channels: int = 36
  num_classes: int = 10
  layers: int = 20
  auxiliary: bool = True

  @nn.compact
  def __call__(self, x, train: bool, drop_path_prob=None):
    """Returns logits [B, classes]; in training, (logits, aux logits or None)."""
    c_stem = 3 * self.channels
    w = self.param('stem_conv', layers.torch_init(9 * x.shape[-1]),
                   (3, 3, x.shape[-1], c_stem))
    s = layers.BatchNorm(name='stem_bn')(layers.conv2d(x, w), train)
    s1, aux = _CellStack(self.genotype, self.channels, self.layers,
                         (self.layers // 3, 2 * self.layers // 3), False,
                         self.num_classes, self.auxiliary, 3, True,
                         name='cells')(s, s, train, drop_path_prob)
    logits = _classifier(jnp.mean(s1, axis=(1, 2)), self.num_classes)
    return (logits, aux) if train else logits


class NetworkImageNet(nn.Module):
  """The DARTS ImageNet (mobile setting) network for a genotype.

  stem0: 3x3/2 conv to C/2, BN, ReLU, 3x3/2 conv to C, BN; stem1: ReLU,
  3x3/2 conv, BN. The first cell sees s0 = stem0 (56x56 at 224 input) and
  s1 = stem1 (28x28), so it starts with a FactorizedReduce. The head is a
  global average pool (the reference's AvgPool2d(7) at 224 input).
  """
  genotype: genotype_lib.Genotype
  channels: int = 48
  num_classes: int = 1000
  layers: int = 14
  auxiliary: bool = True

  @nn.compact
  def __call__(self, x, train: bool, drop_path_prob=None):
    c = self.channels

    def conv_bn(x, c_out, name):
      c_in = x.shape[-1]
      w = self.param(f'{name}_conv', layers.torch_init(9 * c_in),
                     (3, 3, c_in, c_out))
      return layers.BatchNorm(name=f'{name}_bn')(layers.conv2d(x, w, 2), train)

    s0 = conv_bn(jax.nn.relu(conv_bn(x, c // 2, 'stem0a')), c, 'stem0b')
    s1 = conv_bn(jax.nn.relu(s0), c, 'stem1')
    s1, aux = _CellStack(self.genotype, c, self.layers,
                         (self.layers // 3, 2 * self.layers // 3), True,
                         self.num_classes, self.auxiliary, 2, False,
                         name='cells')(s0, s1, train, drop_path_prob)
    logits = _classifier(jnp.mean(s1, axis=(1, 2)), self.num_classes)
    return (logits, aux) if train else logits


def param_count_without_aux(params) -> int:
  """Weights excluding the auxiliary head (`aux_head`, at the top or under
  `cells`): the count the papers report."""
  rest = {k: v for k, v in params.items() if k not in ('cells', 'aux_head')}
  cells = {k: v for k, v in params.get('cells', {}).items()
           if k != 'aux_head'}
  return layers.param_count(rest) + layers.param_count(cells)


def init_shapes(net: nn.Module, image_shape: Sequence[int]):
  """Variable shapes of `net` (auxiliary head included), without computing."""
  x = jax.ShapeDtypeStruct((2,) + tuple(image_shape), jnp.float32)
  rngs = {'params': jax.random.key(0), 'drop_path': jax.random.key(1)}
  return jax.eval_shape(lambda r, x: net.init(r, x, train=True), rngs, x)
