"""ENAS's final networks: one fixed arc, retrained from scratch.

These are the reference's fixed children (`melodyguan/enas`,
`src/cifar10/micro_child.py` and `general_child.py`, `_fixed_layer`), the
networks its `cifar10_{micro,macro}_final.sh` scripts train. They are not
the search children with a fixed arc (`enas.child`): the wiring differs.

Micro (`MicroNetwork`): stem 3x3 conv to 3F, BN; `num_layers + 2` cells,
reduction cells at L // 3 and 2 (L // 3) + 1 where the filters double and
the cell's ops read the cell inputs with **stride 2** (no separate
factorised reduction before the cell, unlike search). A cell:

* makes its inputs F channels at the same size: input 0 by ReLU-factorised
  reduction if it is twice the size of input 1, else by ReLU-1x1-BN if its
  channels differ; input 1 by ReLU-1x1-BN if its channels differ; then input
  1 always goes through ReLU-1x1-BN (the reference's `layer_base`);
* node i = op_1(state index_1) + op_2(state index_2); a state read from the
  cell inputs in a reduction cell is read with stride 2: separable ops (two
  stacks of ReLU, depthwise, pointwise, BN) stride their first stack, pools
  stride, identity becomes a factorised reduction; drop-path on every op
  except identity, its rate growing with depth ((cell + 1) / (L + 2)) and
  ramped in over the training steps;
* output: the loose ends (the states no node reads, cell inputs included)
  concatenated, **with no 1x1 conv after** (the search child has one); a
  loose cell input of a reduction cell is factorised-reduced first.

An auxiliary head follows the cell after the second reduction (training
only; its BatchNorms use batch statistics, as the reference's); ReLU, global
average pool, dropout, linear classifier without bias.

Macro (`MacroNetwork`): stem 3x3 conv to F, BN; layer i runs its op on layer
i - 1's output: ReLU-1x1 conv-BN, then for conv ops ReLU, k x k conv, BN;
for separable ops ReLU, depthwise k x k, pointwise, BN; for pools 3x3
pooling. Layer i > 0 then concatenates its chosen skip inputs (states j of
[stem, layer 0, ..., layer i - 2], the search's indexing) with its output
and applies ReLU-1x1 conv-BN back to F channels. After layers L // 3 - 1 and
2 L // 3 - 1 the filters double and every state so far goes through its own
factorised reduction. Global average pool, dropout, linear classifier.

Differences from the reference's fixed children, on purpose:
* macro separable ops are separable (the reference builds ops 1 and 3 as
  plain convolutions) and pools are built (the reference leaves them
  unimplemented); `reference_ops=True` builds 1 and 3 as plain convolutions
  again, to reproduce its parameter counts;
* stride-2 convolutions and pools pad symmetrically (like DARTS and
  PyTorch); TensorFlow's 'SAME' pads one pixel at the bottom and right
  only. Parameter counts are unaffected.

All BatchNorms keep running statistics (decay 0.9, eps 1e-5) used in
inference, except the auxiliary head's. The call signature is the DARTS
network's (`nasjax.final.network`), so the retraining loop drives both.

Synopsis:

  space, arc = search_spaces.enas.published('ENAS_MICRO')
  net = network(EnasArc(space, arc), channels=36, num_layers=15)
  variables = net.init({'params': k1, 'drop_path': k2}, x, train=True)
  (logits, aux), updates = net.apply(variables, x, train=True,
                                     drop_path_prob=0.2, rngs=...,
                                     mutable=['batch_stats'])
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasjax import layers
from nasjax.enas import child as child_lib
from nasjax.enas import ops
from nasjax.search_spaces.enas import EnasArc, MacroSpace, MicroSpace

BatchNorm = child_lib.BatchNorm


class SepConv(nn.Module):
  """Two stacks of ReLU, depthwise k x k, pointwise, BN; the first strided."""
  channels: int
  kernel: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    k = self.kernel
    for s in range(2):
      c = x.shape[-1]
      dw = self.param(f'dw{s}', ops.he_init(k * k), (k, k, c))
      pw = self.param(f'pw{s}', ops.he_init(c), (c, self.channels))
      x = layers.depthwise_conv(jax.nn.relu(x), dw,
                                self.stride if s == 0 else 1)
      x = BatchNorm(True, name=f'bn{s}')(layers.pointwise_conv(x, pw), train)
    return x


def _conv1x1(f, name):
  return child_lib.Conv1x1BN(f, relu=True, running=True, name=name)


def _reduce(f, name):
  return child_lib.Reduce(f, running=True, name=name)


class MicroCell(nn.Module):
  """One cell of the micro final network (module docstring)."""
  tokens: tuple[int, ...]
  channels: int
  stride: int
  depth_ratio: float

  @nn.compact
  def __call__(self, s0, s1, train: bool, drop_rate=None):
    f, tokens = self.channels, self.tokens
    s0, s1 = child_lib.calibrate(s0, s1, f, running=True, train=train)
    s1 = _conv1x1(f, 'base')(s1, train)
    states, used = [s0, s1], [0] * (len(tokens) // 4 + 2)
    for i in range(len(tokens) // 4):
      out = 0.0
      for s, slot in enumerate('xy'):
        idx, op = tokens[4 * i + 2 * s], tokens[4 * i + 2 * s + 1]
        stride = self.stride if idx < 2 else 1
        h, name = states[idx], f'node{i}_{slot}'
        if op < len(child_lib.MICRO_CONV):
          h = SepConv(f, child_lib.MICRO_CONV[op], stride, name=name)(h, train)
        elif op == 2:
          h = layers.avg_pool_3x3(h, stride)
        elif op == 3:
          h = layers.max_pool_3x3(h, stride)
        elif stride > 1:
          h = _reduce(f, name)(h, train)
        if op < 4 and drop_rate is not None:
          h = ops.drop_path(h, 1.0 - self.depth_ratio * drop_rate,
                            self.make_rng('drop_path'))
        out = out + h
        used[idx] += 1
      states.append(out)
    size = states[-1].shape[1]
    loose = []
    for j, s in enumerate(states):
      if not used[j]:
        if s.shape[1] != size:
          s = _reduce(f, f'combine{j}')(s, train)
        loose.append(s)
    return jnp.concatenate(loose, -1)


class MicroNetwork(nn.Module):
  """ENAS's micro final network for one arc.

  Attributes:
    arc: the arc as tuples, normal cell then reduction cell (4B tokens each).
    channels: F of the first cells (36 in the reference).
    num_layers: L; the network has L + 2 cells (15 in the reference).
    num_classes: classifier outputs.
    auxiliary: the auxiliary head (training only).
    keep_prob: dropout keep probability before the classifier.
  """
  arc: tuple[tuple[int, ...], ...]
  channels: int = 36
  num_layers: int = 15
  num_classes: int = 10
  auxiliary: bool = True
  keep_prob: float = 0.8

  @property
  def reduction_layers(self) -> tuple[int, int]:
    d = self.num_layers // 3
    return (d, 2 * d + 1)

  @nn.compact
  def __call__(self, x, train: bool, drop_path_prob=None):
    """Logits; in training (logits, aux logits or None).

    `drop_path_prob`: the drop-path rate at the last cell (traced; ramped by
    the caller), scaled down with depth; None or 0 off.
    """
    f = self.channels
    x = child_lib.stem(self, x, 3 * f, True, train)
    s0 = s1 = x
    aux, cells = None, self.num_layers + 2
    for layer in range(cells):
      reduction = layer in self.reduction_layers
      f = f * 2 if reduction else f
      out = MicroCell(self.arc[int(reduction)], f, 2 if reduction else 1,
                      (layer + 1) / cells, name=f'cell{layer}')(
                          s0, s1, train, drop_path_prob if train else None)
      s0, s1 = s1, out
      if self.auxiliary and train and layer == self.reduction_layers[1] + 1:
        aux = child_lib.AuxHead(self.num_classes, name='aux_head')(out)
    h = child_lib.dropout(self, jnp.mean(jax.nn.relu(s1), (1, 2)),
                          self.keep_prob, train)
    logits = child_lib.classifier(self, h, self.num_classes)
    return (logits, aux) if train else logits


class MacroOp(nn.Module):
  """A macro layer's op (module docstring)."""
  channels: int
  op: int
  reference_ops: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    f, op = self.channels, self.op
    h = _conv1x1(f, 'inp')(x, train)
    if op >= len(child_lib.MACRO_KERNELS):
      return layers.avg_pool_3x3(h, 1) if op == 4 else layers.max_pool_3x3(h, 1)
    k = child_lib.MACRO_KERNELS[op]
    if op in (1, 3) and not self.reference_ops:
      dw = self.param('dw', ops.he_init(k * k), (k, k, f))
      pw = self.param('pw', ops.he_init(f), (f, f))
      y = ops.separable(jax.nn.relu(h), dw, pw)
    else:
      w = self.param('w', ops.he_init(k * k * f), (k, k, f, f))
      y = ops.conv(jax.nn.relu(h), w)
    return BatchNorm(True, name='out_bn')(y, train)


class MacroNetwork(nn.Module):
  """ENAS's macro final network for one arc.

  Attributes:
    arc: a `child.MacroArc` (ops [L], skips [L][L]).
    channels: F of the first layers (96 in the reference).
    num_classes: classifier outputs.
    keep_prob: dropout keep probability before the classifier.
    reference_ops: build separable ops as plain convolutions, as the
      reference's fixed child does (for its parameter counts).
  """
  arc: child_lib.MacroArc
  channels: int = 96
  num_classes: int = 10
  keep_prob: float = 0.5
  reference_ops: bool = False

  @property
  def reduction_layers(self) -> tuple[int, int]:
    d = len(self.arc.ops) // 3
    return (d - 1, 2 * d - 1)

  @nn.compact
  def __call__(self, x, train: bool, drop_path_prob=None):
    """Logits; in training (logits, None). `drop_path_prob` is unused (the
    reference's macro network has no drop-path)."""
    del drop_path_prob
    f = self.channels
    states = [child_lib.stem(self, x, f, True, train)]
    for i, op in enumerate(self.arc.ops):
      y = MacroOp(f, op, self.reference_ops, name=f'layer{i}')(states[-1],
                                                              train)
      if i > 0:
        chosen = [states[j] for j in range(i) if self.arc.skips[i][j]]
        y = _conv1x1(f, f'skip{i}')(jnp.concatenate(chosen + [y], -1), train)
      states.append(y)
      if i in self.reduction_layers:
        f *= 2
        states = [_reduce(f, f'reduce{i}_from{j}')(s, train)
                  for j, s in enumerate(states)]
    h = child_lib.dropout(self, jnp.mean(states[-1], (1, 2)), self.keep_prob,
                          train)
    logits = child_lib.classifier(self, h, self.num_classes)
    return (logits, None) if train else logits


def network(arch: EnasArc, *, channels: int, num_layers: int | None = None,
            num_classes: int = 10, auxiliary: bool = True,
            keep_prob: float = 1.0, reference_ops: bool = False) -> nn.Module:
  """The final network of `arch` (a micro or macro `EnasArc`).

  `num_layers` is L for micro (L + 2 cells); a macro network has the arc's
  layers, and a different `num_layers` is an error.
  """
  if isinstance(arch.space, MicroSpace):
    if reference_ops:
      raise ValueError('reference_ops applies to macro arcs only.')
    return MicroNetwork(child_lib.static_arc(arch.arc), channels,
                        15 if num_layers is None else num_layers, num_classes,
                        auxiliary, keep_prob)
  assert isinstance(arch.space, MacroSpace)
  n = arch.space.num_layers
  if num_layers not in (None, n):
    raise ValueError(f'This macro arc has {n} layers; model.layers is '
                     f'{num_layers} (set it to {n} or 0).')
  return MacroNetwork(child_lib.static_arc(arch.arc), channels, num_classes,
                      keep_prob, reference_ops)
