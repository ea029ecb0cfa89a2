"""The DARTS search network (supernet) as a pure Flax module.

alpha is not a parameter of the module: it is an explicit argument,
`{'normal': [E, K], 'reduce': [E, K]}` logits, so that weights and alpha have
separate gradients and optimiser states:

  logits, updates = model.apply({'params': w, 'batch_stats': bs}, x, alpha,
                                train=True, mutable=['batch_stats'])

Every edge of a search cell computes the mixed op sum_k softmax(alpha_e)_k *
op_k(x) (`MixedOp`). A cell does not build its 14 mixed ops one by one: it
runs them through one `nn.scan` over edges (`EdgeScan`), with each edge's
weights stacked on a leading axis, so XLA compiles one mixed op per cell pass
instead of one per edge (whole-network compile 143 s -> 21 s in the
measurement quoted in README). `params[...]['scan']['mixed']` holds, at index
e, exactly what a standalone `MixedOp` on that edge would hold
(tests/darts_model_test.py checks the equivalence). With `remat`, each edge's
mixed op is recomputed in the backward pass instead of stored: the scan then
keeps only the edge's input for the backward pass, which on CPU is both
smaller and faster (benchmarks/README.md).

Not done (yet): the parameter-free ops (pools, zero, identity) give the same
tensor on every edge leaving one node with one stride and could be computed
once per source node; in the scan they are computed per edge.

Synopsis:

  model = SearchNetwork(DartsCellSpace(), channels=16, num_classes=10, layers=8)
  variables = model.init(rng, images, alpha, train=False)
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasjax import layers
from nasjax import mixing as mixing_lib
from nasjax import ops
from nasjax.search_spaces import darts_cell


class MixedOp(nn.Module):
  """One search edge: sum_k w_k op_k(x), pools followed by affine-free BN.

  This is the literal definition; the supernet computes the same thing
  through `EdgeScan`. Kept as the reference the tests compare against.
  """
  primitives: tuple[str, ...]
  channels: int
  stride: int

  @nn.compact
  def __call__(self, x, weights, train):
    out = 0.0
    for k, name in enumerate(self.primitives):
      y = ops.get(name)(self.channels, self.stride, False, name=name)(x, train)
      if 'pool' in name:
        y = layers.BatchNorm(False, name=f'{name}_bn')(y, train)
      out = out + weights[k] * y
    return out


class _ScanEdge(nn.Module):
  """The scan body: one edge's mixed op, added into its target node.

  carry: [S, B, H', W', C] buffer of the cell's states at output resolution.
  xs: (weights [K], source j, target node slot i) for this edge.
  inputs: [2, B, H, W, C] the cell inputs, read by the stride-2 pass only.
  """
  primitives: tuple[str, ...]
  channels: int
  stride: int
  train: bool
  remat: bool

  @nn.compact
  def __call__(self, carry, xs, inputs):
    weights, src, dst = xs
    x = (inputs if self.stride == 2 else carry)[src]
    # Rematerialise the mixed op alone, so that the scan keeps one tensor (x)
    # per edge for the backward pass rather than the whole carry.
    mixed = (nn.remat(MixedOp, prevent_cse=False, static_argnums=(3,))
             if self.remat else MixedOp)
    y = mixed(self.primitives, self.channels, self.stride, name='mixed')(
        x, weights, self.train)
    return carry.at[dst].add(y), None


class EdgeScan(nn.Module):
  """Mixed ops on a list of edges, evaluated by one `nn.scan`.

  XLA compiles the scan body once, so a cell costs one mixed op of compile
  time per pass instead of one per edge. Each edge keeps its own weights,
  stacked on a leading edge axis: `jax.tree.map(lambda a: a[e], params)` is
  what a standalone `MixedOp` on edge e holds.

  Attributes:
    primitives: op names (alpha columns).
    channels: channels of every node.
    stride: 2 for edges leaving the inputs of a reduction cell, else 1.
    edges: (target state, source state) per edge, in evaluation order. For
      stride 1 the order must be topological (alpha-row order is).
    train: BatchNorm mode.
    remat: recompute each edge's mixed op in the backward pass instead of
      storing its intermediates (less memory, more compute).
  """
  primitives: tuple[str, ...]
  channels: int
  stride: int
  edges: tuple[tuple[int, int], ...]
  train: bool
  remat: bool = False

  @nn.compact
  def __call__(self, states, weights, inputs):
    """states [S, B, H', W', C]; weights [E, K]; inputs [2, B, H, W, C]."""
    scan = nn.scan(_ScanEdge,
                   variable_axes={'params': 0, 'batch_stats': 0},
                   split_rngs={'params': True},
                   in_axes=(0, nn.broadcast),
                   length=len(self.edges))
    dst = jnp.asarray([d for d, _ in self.edges], jnp.int32)
    src = jnp.asarray([s for _, s in self.edges], jnp.int32)
    states, _ = scan(self.primitives, self.channels, self.stride, self.train,
                     self.remat, name='scan')(states, (weights, src, dst), inputs)
    return states


class SearchCell(nn.Module):
  """A DARTS search cell over `space` with `channels` channels per node.

  A normal cell is one pass of `EdgeScan` over its 14 edges in alpha-row
  order (node i's inputs all precede it). A reduction cell makes two passes:
  first the stride-2 edges leaving the two inputs, then the stride-1 edges
  between intermediate nodes.
  """
  space: darts_cell.DartsCellSpace
  channels: int
  reduction: bool
  reduction_prev: bool
  remat: bool = False

  @nn.compact
  def __call__(self, s0, s1, weights, train):
    """Args: s0, s1 the two previous cell outputs; weights [E, K]."""
    c, space = self.channels, self.space
    if self.reduction_prev:
      s0 = ops.FactorizedReduce(c, affine=False, name='preprocess0')(s0, train)
    else:
      s0 = ops.ReLUConvBN(c, affine=False, name='preprocess0')(s0, train)
    s1 = ops.ReLUConvBN(c, affine=False, name='preprocess1')(s1, train)
    inputs = jnp.stack([s0, s1])
    n_in, n_states = space.num_inputs, space.num_inputs + space.steps
    # (alpha row, target state, source state) for every edge.
    edges = [(r, i + n_in, j) for r, (i, j) in enumerate(space.edges())]
    if self.reduction:
      b, h, w, _ = s0.shape
      shape = (n_states, b) + layers.strided_size((h, w), 2) + (c,)
      states = jnp.zeros(shape, s0.dtype)
      passes = [(2, [e for e in edges if e[2] < n_in]),
                (1, [e for e in edges if e[2] >= n_in])]
    else:
      states = jnp.concatenate(
          [inputs, jnp.zeros((n_states - n_in,) + s0.shape, s0.dtype)])
      passes = [(1, edges)]
    for stride, group in passes:
      if not group:
        continue
      rows = jnp.asarray([r for r, _, _ in group])
      states = EdgeScan(space.primitives, c, stride,
                        tuple((d, s) for _, d, s in group), train,
                        self.remat, name=f'stride{stride}_edges')(states, weights[rows],
                                                      inputs)
    return jnp.concatenate([states[i] for i in space.concat], axis=-1)


class SearchNetwork(nn.Module):
  """Stem, `layers` search cells (reductions at 1/3 and 2/3), pool, linear.

  Attributes:
    space: the cell space (primitives, steps).
    channels: C, channels per node in the first cells (doubles at reductions).
    num_classes: classifier outputs.
    layers: number of cells.
    stem_multiplier: the stem outputs stem_multiplier * C channels.
    remat: rematerialise each edge in the backward pass (see `EdgeScan`).
  """
  space: darts_cell.DartsCellSpace
  channels: int = 16
  num_classes: int = 10
  layers: int = 8
  stem_multiplier: int = 3
  remat: bool = False

  def reduction_layers(self) -> tuple[int, ...]:
    return (self.layers // 3, 2 * self.layers // 3)

  @nn.compact
  def __call__(self, x, alpha, train):
    """Args: x [B, H, W, C_img]; alpha {'normal','reduce'}: [E, K] logits,
    or a `nasjax.mixing.Mixing` each (its weights used as they are, every
    op computed: the one-shot strategies).

    Returns: [B, num_classes] logits.
    """
    c_stem = self.stem_multiplier * self.channels
    w = self.param('stem_conv', layers.torch_init(9 * x.shape[-1]),
                   (3, 3, x.shape[-1], c_stem))
    s = layers.BatchNorm(True, name='stem_bn')(layers.conv2d(x, w), train)
    weights = {t: a.weights if isinstance(a, mixing_lib.Mixing) else
               jax.nn.softmax(a, axis=-1) for t, a in alpha.items()}
    want = (self.space.num_edges, self.space.num_ops)
    for t, w in weights.items():
      if tuple(w.shape) != want:
        raise ValueError(f'alpha[{t!r}] has shape {tuple(w.shape)}; this '
                         f'network\'s cell space needs {want}.')
    s0 = s1 = s
    c, reduction_prev = self.channels, False
    for i in range(self.layers):
      reduction = i in self.reduction_layers()
      c = 2 * c if reduction else c
      cell = SearchCell(self.space, c, reduction, reduction_prev, self.remat,
                        name=f'cell{i}')
      s0, s1 = s1, cell(s0, s1, weights['reduce' if reduction else 'normal'],
                        train)
      reduction_prev = reduction
    feats = jnp.mean(s1, axis=(1, 2))
    return nn.Dense(self.num_classes,
                    kernel_init=layers.torch_init(feats.shape[-1]),
                    bias_init=layers.torch_init(feats.shape[-1]),
                    name='classifier')(feats)


def init_alpha(space: darts_cell.DartsCellSpace, rng: jax.Array,
               scale: float = 1e-3) -> dict[str, jax.Array]:
  """alpha = scale * N(0, 1), {'normal': [E, K], 'reduce': [E, K]}."""
  keys = jax.random.split(rng, len(darts_cell.CELL_TYPES))
  return {t: scale * jax.random.normal(k, shape)
          for k, (t, shape) in zip(keys, space.alpha_shapes().items())}
