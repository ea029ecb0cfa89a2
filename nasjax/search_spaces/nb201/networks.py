"""The NAS-Bench-201 networks: the weight-sharing supernet and a cell's
discrete network, as Flax modules (the macro structure of the NB201 paper and
of its authors' code, AutoDL-Projects `TinyNetwork`):

  stem      3x3 conv (C channels) + BN
  stage 1   N cells at C
  reduce    residual basic block, stride 2, to 2C
  stage 2   N cells at 2C
  reduce    residual basic block, stride 2, to 4C
  stage 3   N cells at 4C
  head      BN + ReLU, global average pool, linear classifier

with C = 16 and N = 5 in the benchmark. Every cell of a network is the same
cell. Cell ops: none (zeros), skip_connect (identity), nor_conv_1x1 and
nor_conv_3x3 (ReLU, conv, BatchNorm), avg_pool_3x3 (padding not counted).
The basic block is ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus a
shortcut of 2x2 average pooling and a 1x1 conv. BatchNorm in the discrete
network is affine; in the supernet's cells it is not (AutoDL's search
cells), elsewhere it is. Every BatchNorm here computes the batch variance in
two passes (`layers.BatchNorm.two_pass`): a supernet with sampled ops changes
the scale of its activations by orders of magnitude from step to step.

The supernet takes how to mix the ops as an argument, `{'cell': Mixing}`
(`nasjax.mixing`): one [6, 5] row of op weights per edge, shared by every
cell, and optionally one selected op per edge. Without a selection every
edge computes `sum_k weights[e, k] * op_k(x)` (DARTS). With one (GDAS,
random sampling, a controller's sample) every edge computes only the
selected op k*, by `nn.switch`, as `weights[e, k*] * op_k*(x)`: the other
ops cost neither time nor memory. `unselected_weights='reference'` also adds the other ops'
weights as scalars (their value is 0 for a hard one-hot, their gradient is
not), as AutoDL's `forward_gdas` does; 'drop' leaves them out (AutoDL's
`forward_gdas_v1`); 'every_op' ignores the selection and computes every op
times its weight: the same values and weight gradients under a one-hot
mixing, and GDAS's gradient for alpha through every op's output (the
straight-through form), at the cost of every op: a pass at C=16, N=5,
batch 64 on a 2-core CPU takes 1.98 s against 0.86 s with the switch
(`benchmarks/nb201_pass.py`). The convolutions in the switch's branches
take their backward pass in XLA:CPU's fast layout
(`layers.conv2d_in_switch`; with autodiff's own, that pass took 14.3 s).

Synopsis:

  net = Supernet(num_classes=10)
  mixing = {'cell': Mixing(jax.nn.softmax(alpha, -1))}     # DARTS
  mixing = {'cell': Mixing(hard_weights, index)}           # one op per edge
  logits, upd = net.apply(variables, x, mixing, train=True,
                          mutable=['batch_stats'])

  net = Network(cell=(3, 3, 3, 1, 2, 3), num_classes=10)
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasjax import layers
from nasjax.mixing import Mixing
from nasjax.search_spaces.nb201 import encoding

UNSELECTED_WEIGHTS = ('reference', 'drop', 'every_op')


class ReLUConvBN(nn.Module):
  """ReLU, k x k conv (no bias), BatchNorm."""
  channels: int
  kernel: int
  stride: int = 1
  affine: bool = True
  in_switch: bool = False  # A branch of a traced switch.

  @nn.compact
  def __call__(self, x, train):
    c_in = x.shape[-1]
    w = self.param('kernel', layers.torch_init(self.kernel ** 2 * c_in),
                   (self.kernel, self.kernel, c_in, self.channels))
    conv = layers.conv2d_in_switch if self.in_switch else layers.conv2d
    y = conv(jax.nn.relu(x), w, self.stride)
    return layers.BatchNorm(self.affine, two_pass=True, name='bn')(y, train)


class BasicBlock(nn.Module):
  """The residual reduction between stages (stride 2)."""
  channels: int

  @nn.compact
  def __call__(self, x, train):
    y = ReLUConvBN(self.channels, 3, 2, name='conv_a')(x, train)
    y = ReLUConvBN(self.channels, 3, 1, name='conv_b')(y, train)
    b, h, w, c = x.shape
    pooled = x[:, :h - h % 2, :w - w % 2].reshape(
        b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    k = self.param('downsample', layers.torch_init(c), (c, self.channels))
    return y + layers.pointwise_conv(pooled, k)


def _apply_op(name: str, x, train, conv1=None, conv3=None):
  if name == 'none':
    return jnp.zeros_like(x)
  if name == 'skip_connect':
    return x
  if name == 'nor_conv_1x1':
    return conv1(x, train)
  if name == 'nor_conv_3x3':
    return conv3(x, train)
  if name == 'avg_pool_3x3':
    return layers.avg_pool_3x3(x, 1)
  raise ValueError(f'Unknown NB201 op {name!r}.')


class SearchCell(nn.Module):
  """Every op on every edge; node i sums its edges' outputs."""
  channels: int
  unselected_weights: str = 'reference'

  @nn.compact
  def __call__(self, x, mixing: Mixing, train):
    nodes = [x]
    for i in range(1, encoding.NUM_NODES):
      total = 0.0
      for j in range(i):
        e = encoding.EDGES.index((i, j))
        h, w = nodes[j], mixing.weights[e]
        every_op = (mixing.index is None or self.is_initializing() or
                    self.unselected_weights == 'every_op')
        conv1 = ReLUConvBN(self.channels, 1, affine=False,
                           in_switch=not every_op,
                           name=f'edge{e}_nor_conv_1x1')
        conv3 = ReLUConvBN(self.channels, 3, affine=False,
                           in_switch=not every_op,
                           name=f'edge{e}_nor_conv_3x3')
        if every_op:
          out = sum(w[k] * _apply_op(op, h, train, conv1, conv3)
                    for k, op in enumerate(encoding.OPS))
        else:
          branches = [
              (lambda op: lambda m, z: _apply_op(op, z, train, conv1, conv3)
               )(op) for op in encoding.OPS]
          k = mixing.index[e]
          out = w[k] * nn.switch(k, branches, self, h)
          if self.unselected_weights == 'reference':
            out = out + (jnp.sum(w) - w[k])
        total = total + out
      nodes.append(total)
    return nodes[-1]


class Cell(nn.Module):
  """A discrete cell: node i sums the ops on its edges ('none' adds 0)."""
  cell: tuple[int, ...]
  channels: int

  @nn.compact
  def __call__(self, x, train):
    nodes = [x]
    for i in range(1, encoding.NUM_NODES):
      total = jnp.zeros_like(x)
      for j in range(i):
        e = encoding.EDGES.index((i, j))
        op = encoding.OPS[self.cell[e]]
        conv = ReLUConvBN(self.channels, 1 if op == 'nor_conv_1x1' else 3,
                          name=f'edge{e}_{op}') if 'conv' in op else None
        total = total + _apply_op(op, nodes[j], train, conv, conv)
      nodes.append(total)
    return nodes[-1]


def _stages(channels: int, cells_per_stage: int):
  """(channels, is_reduction) of every layer after the stem."""
  out = []
  for s in range(3):
    if s:
      out.append((channels << s, True))
    out += [(channels << s, False)] * cells_per_stage
  return out


def _stem(module, x, channels, train):
  w = module.param('stem_conv', layers.torch_init(9 * x.shape[-1]),
                   (3, 3, x.shape[-1], channels))
  return layers.BatchNorm(True, two_pass=True, name='stem_bn')(
      layers.conv2d(x, w), train)


def _head(module, x, num_classes, train):
  x = jax.nn.relu(layers.BatchNorm(True, two_pass=True, name='last_bn')(
      x, train))
  feats = jnp.mean(x, axis=(1, 2))
  return nn.Dense(num_classes, kernel_init=layers.torch_init(feats.shape[-1]),
                  bias_init=layers.torch_init(feats.shape[-1]),
                  name='classifier')(feats)


def _macro(module, x, cell, train):
  """Stem, the three stages of `module.cells_per_stage` cells joined by
  basic blocks, head; `cell(channels, name, x)` applies one cell."""
  x = _stem(module, x, module.channels, train)
  for i, (c, reduction) in enumerate(_stages(module.channels,
                                             module.cells_per_stage)):
    if reduction:
      x = BasicBlock(c, name=f'layer{i}')(x, train)
    else:
      x = cell(c, f'layer{i}', x)
  return _head(module, x, module.num_classes, train)


class Supernet(nn.Module):
  """The NB201 weight-sharing network (AutoDL's `TinyNetworkDarts`/`GDAS`).

  Attributes:
    num_classes: classifier outputs.
    channels: C of the first stage (16 in the benchmark).
    cells_per_stage: N (5 in the benchmark).
    unselected_weights: see the module docstring.
  """
  num_classes: int = 10
  channels: int = 16
  cells_per_stage: int = 5
  unselected_weights: str = 'reference'

  @nn.compact
  def __call__(self, x, mixing: dict[str, Mixing], train: bool):
    mixing = mixing['cell']
    if self.unselected_weights not in UNSELECTED_WEIGHTS:
      raise ValueError(f'unselected_weights must be one of '
                       f'{UNSELECTED_WEIGHTS}, got '
                       f'{self.unselected_weights!r}.')
    return _macro(self, x, lambda c, name, h: SearchCell(
        c, self.unselected_weights, name=name)(h, mixing, train), train)


class Network(nn.Module):
  """The discrete network of one cell (AutoDL's `TinyNetwork`), the network
  the benchmark trained for every cell; `nasjax.retrain` trains it with
  the benchmark's recipe (the `nb201` presets of `configs.retrain`).

  Attributes:
    cell: 6 op indices (`encoding`).
    num_classes, channels, cells_per_stage: as `Supernet`.
  """
  cell: tuple[int, ...]
  num_classes: int = 10
  channels: int = 16
  cells_per_stage: int = 5

  @nn.compact
  def __call__(self, x, train: bool):
    return _macro(self, x, lambda c, name, h: Cell(
        tuple(self.cell), c, name=name)(h, train), train)
