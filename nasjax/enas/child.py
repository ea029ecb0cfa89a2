"""ENAS children: one network holding the weights of every architecture.

`MicroChild` (cells) and `MacroChild` (whole network) are the reference's
search-time children (`melodyguan/enas`, `src/cifar10/micro_child.py`
`_enas_layer`, `general_child.py` `_enas_layer`), with the architecture an
**integer array passed as a traced argument**: one compiled train step and
one compiled eval step serve every sampled architecture. Each node (micro)
or layer (macro) gathers the weights of its choice and runs only the chosen
op, through `lax.switch`.

Built with `arc=` a concrete arc instead, the same networks are that one
architecture's fixed network, holding only its own weights
(`fixed_params(space, shared_params, arc)` slices them out of a child's);
the fixed and shared forward passes are equal, which is what checks the
weight-sharing indexing.

Micro (`MicroSpace`): stem 3x3 conv to 3F, BN; `num_layers + 2` cells with
reductions at L // 3 and 2 (L // 3) + 1 (for L = 6: cells 2 and 5 of 8).
At a reduction the filters double, the previous output goes through a
factorised reduction, and the reduction cell runs at stride 1 on [previous
output, reduced output] (as the reference searches). A cell first makes its
two inputs the same shape (ReLU-factorised reduction or ReLU-1x1-BN where
they differ), then node i adds op_1(state index_1) and op_2(state
index_2), ops sep_conv_3x3, sep_conv_5x5, avg_pool_3x3, max_pool_3x3,
identity. Weights are banked by (node, slot, chosen input): a separable op
reading state j uses its own depthwise, pointwise and BN weights. The
states no node reads (the cell inputs included, as in the reference) are
concatenated and go through ReLU, a 1x1 conv (weights gathered per state)
and BN. Every BatchNorm uses the batch statistics, in training and in the
reward pass alike (reference; so the micro child has no running statistics).
Drop-path (a traced rate) on the non-identity ops; an auxiliary head after
the cell following the second reduction, in training; ReLU, global average
pool, dropout, linear classifier without bias.

Macro (`MacroSpace`): stem 3x3 conv to F, BN; layer i runs op_i on layer
i - 1's output: conv/sep branches are 1x1 conv-BN-ReLU then a k x k conv or
separable conv, BN (eps 1e-3), ReLU; pool branches are 1x1 conv-BN-ReLU then
3x3 pooling; weights per (layer, op). Then skip inputs are added and the sum
normalised: skips[i, j] = 1 adds state j of [stem, layer 0, ..., layer
i - 2] (layer i - 1 is the input already), the reference's indexing. After
layers L // 3 - 1 and 2 L // 3 - 1 every state so far goes through its own
factorised reduction (filters stay F). Global average pool, dropout, linear.
BatchNorm keeps running statistics, used in inference (the reward pass).

Differences from the reference, on purpose:
* the macro child runs the sampled op (the reference's `tf.case` runs the
  max-pool branch whatever the arc: docs/from_reference_code.md);
* drop-path is applied in the micro search child (the reference's search
  child ignores its `drop_path_keep_prob`); `drop_rate=None` turns it off;
* the auxiliary head is trained (the reference leaves its weights out of
  the optimiser, so only its gradient into the body acts);
* weights are He-normal with the fan-in of the slice used (`enas.ops`).

Synopsis:

  net = MicroChild(MicroSpace(), channels=20, num_layers=6)
  variables = net.init({'params': k1, 'dropout': k2, 'drop_path': k3}, x,
                       arc, train=True)
  (logits, aux), _ = net.apply(variables, x, arc, train=True, drop_rate=r,
                               rngs=..., mutable=['batch_stats'])
"""

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nasjax import layers
from nasjax.enas import ops
from nasjax.search_spaces.enas import MacroSpace, MicroSpace

MICRO_CONV = (3, 5)      # kernel sizes of micro ops 0 and 1
MACRO_KERNELS = (3, 3, 5, 5)   # of macro ops 0..3; 1 and 3 are separable


class BatchNorm(nn.Module):
  """Affine BN: batch statistics only (`running=False`, the micro child) or
  with running statistics used in inference (`ops.bn`)."""
  running: bool = True
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x, train: bool = True):
    c = x.shape[-1]
    p = {'scale': self.param('scale', nn.initializers.ones, (c,)),
         'offset': self.param('offset', nn.initializers.zeros, (c,))}
    if not self.running:
      return ops.batch_norm(x, p['scale'], p['offset'], self.eps)
    mean = self.variable('batch_stats', 'mean', jnp.zeros, (c,))
    var = self.variable('batch_stats', 'var', jnp.ones, (c,))
    y, new = ops.bn(x, p, {'mean': mean.value, 'var': var.value}, train=train,
                    eps=self.eps, update=not self.is_initializing())
    if train and not self.is_initializing():
      mean.value, var.value = new['mean'], new['var']
    return y


class Conv1x1BN(nn.Module):
  """[ReLU], 1x1 conv, BN."""
  channels: int
  relu: bool = True
  running: bool = False

  @nn.compact
  def __call__(self, x, train: bool = True):
    c = x.shape[-1]
    w = self.param('w', ops.he_init(c), (c, self.channels))
    x = jax.nn.relu(x) if self.relu else x
    return BatchNorm(self.running, name='bn')(ops.conv(x, w), train)


class Reduce(nn.Module):
  """[ReLU], factorised reduction to `channels`, BN."""
  channels: int
  relu: bool = False
  running: bool = False

  @nn.compact
  def __call__(self, x, train: bool = True):
    layers.check_even(self.channels, 'A factorised reduction')
    c, half = x.shape[-1], self.channels // 2
    w1 = self.param('w1', ops.he_init(c), (c, half))
    w2 = self.param('w2', ops.he_init(c), (c, half))
    x = jax.nn.relu(x) if self.relu else x
    return BatchNorm(self.running, name='bn')(
        ops.factorized_reduce(x, w1, w2), train)


def calibrate(s0, s1, channels: int, running: bool = False,
              train: bool = True):
  """A cell's two inputs at `channels` and the same size (the reference's
  `_maybe_calibrate_size`): s0 by ReLU-factorised reduction if it is larger,
  else ReLU-1x1-BN if its channels differ; s1 by ReLU-1x1-BN if its channels
  differ. Call inside a compact method (the modules join its scope)."""
  if s0.shape[1] != s1.shape[1]:
    s0 = Reduce(channels, relu=True, running=running,
                name='calibrate_x')(s0, train)
  elif s0.shape[-1] != channels:
    s0 = Conv1x1BN(channels, running=running, name='calibrate_x')(s0, train)
  if s1.shape[-1] != channels:
    s1 = Conv1x1BN(channels, running=running, name='calibrate_y')(s1, train)
  return s0, s1


def _sep_weights(module, name, channels, kernel, lead=()):
  """Weights of a micro separable op (two stacks), behind `lead` axes."""
  f, k, lead = channels, kernel, tuple(lead)
  return {
      'dw': module.param(f'{name}_dw', ops.he_init(k * k), lead + (2, k, k, f)),
      'pw': module.param(f'{name}_pw', ops.he_init(f), lead + (2, f, f)),
      'scale': module.param(f'{name}_scale', nn.initializers.ones,
                            lead + (2, f)),
      'offset': module.param(f'{name}_offset', nn.initializers.zeros,
                             lead + (2, f))}


# The micro ops as `ops.switch` branches: (x, (sep3, sep5) weights, ()).
_MICRO_BRANCHES = (lambda x, w, s: (ops.sep_conv(x, w[0]), s),
                   lambda x, w, s: (ops.sep_conv(x, w[1]), s),
                   lambda x, w, s: (ops.avg_pool(x), s),
                   lambda x, w, s: (ops.max_pool(x), s),
                   lambda x, w, s: (x, s))


def _micro_op(op, x, sep3, sep5):
  """Micro op `op` (0 sep3, 1 sep5, 2 avg, 3 max, 4 identity) on x."""
  if isinstance(op, int):
    return _MICRO_BRANCHES[op](x, (sep3, sep5), ())[0]
  return ops.switch(_MICRO_BRANCHES, op, x, (sep3, sep5), ())[0]


class MicroCell(nn.Module):
  """One micro cell; `arc` (a cell's 4B tokens) traced, or static if
  `fixed` is given (then it holds only that cell's weights).

  Shared: the 2B (node, slot) pairs run as one `lax.scan` over a buffer of
  the B + 2 states, so the cell's op switch is compiled once, not 2B times;
  the separable ops' weights are banked [2B slots, B + 2 inputs, ...]
  (slot 2i + s of node i reads one of the first i + 2 states: the other
  rows are never read; only the L2 term moves them).
  """
  num_nodes: int
  channels: int
  depth_ratio: float            # (layer + 1) / (num_layers + 2), drop-path
  fixed: tuple[int, ...] | None = None

  @nn.compact
  def __call__(self, s0, s1, arc, drop_rate=None):
    f, b = self.channels, self.num_nodes
    s0, s1 = calibrate(s0, s1, f)
    keep = None if drop_rate is None else 1.0 - self.depth_ratio * drop_rate
    if self.fixed is None:
      y = self._shared(s0, s1, jnp.asarray(arc).reshape(b, 4), keep)
    else:
      y = self._fixed(s0, s1, keep)
    return BatchNorm(False, name='final_bn')(y)

  def _shared(self, s0, s1, tokens, keep):
    f, b = self.channels, self.num_nodes
    banks = [_sep_weights(self, f'sep{k}', f, k, (2 * b, b + 2))
             for k in MICRO_CONV]
    idx = tokens[:, 0::2].reshape(-1)          # [2B]: inputs of the slots
    op = tokens[:, 1::2].reshape(-1)           # [2B]: their ops
    keys = (jax.random.split(self.make_rng('drop_path'), 2 * b)
            if keep is not None else jnp.zeros((2 * b,)))

    def slot(carry, xs):
      states, acc = carry
      t, i, o, w3, w5, key = xs
      pick = lambda w: jax.tree.map(lambda v: v[i], w)  # pylint: disable=cell-var-from-loop
      h = _micro_op(o, states[i], pick(w3), pick(w5))
      if keep is not None:
        h = jnp.where(o < 4, ops.drop_path(h, keep, key), h)
      acc = acc + h
      node, done = t // 2 + 2, t % 2 == 1
      states = lax.dynamic_update_index_in_dim(
          states, jnp.where(done, acc, states[node]), node, 0)
      return (states, jnp.where(done, 0.0, acc)), None

    states = jnp.zeros((b + 2,) + s1.shape, s1.dtype)
    states = states.at[0].set(s0).at[1].set(s1)
    (states, _), _ = lax.scan(slot, (states, jnp.zeros_like(s1)),
                              (jnp.arange(2 * b), idx, op, *banks, keys))
    # ReLU-1x1 of the loose ends only (one conditional each), summed: the
    # 1x1 conv of their concatenation with the weights gathered per state.
    loose = jnp.sum(jax.nn.one_hot(idx, b + 2), 0) == 0
    w = self.param('final_conv', ops.he_init(f), (b + 2, f, f))
    y = jnp.zeros(s1.shape[:-1] + (f,), s1.dtype)
    for j in range(b + 2):
      y = lax.cond(loose[j], lambda y, s, w: y + ops.conv(jax.nn.relu(s), w),
                   lambda y, s, w: y, y, states[j], w[j])
    return y

  def _fixed(self, s0, s1, keep):
    f, b, tokens = self.channels, self.num_nodes, self.fixed
    states, used = [s0, s1], [0] * (b + 2)
    for i in range(b):
      out = 0.0
      for s, slot in enumerate('xy'):
        idx, op = tokens[4 * i + 2 * s], tokens[4 * i + 2 * s + 1]
        w = [None, None]
        if op < len(MICRO_CONV):
          w[op] = _sep_weights(self, f'node{i}_{slot}', f, MICRO_CONV[op])
        h = _micro_op(op, states[idx], *w)
        if keep is not None and op < 4:
          h = ops.drop_path(h, keep, self.make_rng('drop_path'))
        out = out + h
        used[idx] += 1
      states.append(out)
    loose = [j for j in range(b + 2) if not used[j]]
    w = self.param('final_conv', ops.he_init(f), (len(loose) * f, f))
    return ops.conv(jax.nn.relu(jnp.concatenate([states[j] for j in loose],
                                                -1)), w)


class AuxHead(nn.Module):
  """ReLU, 5x5/3 avg pool, 1x1 conv 128-BN-ReLU, full-size conv
  768-BN-ReLU, global pool, linear (no bias): the reference micro head."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    if min(x.shape[1:3]) < 5:
      raise ValueError(
          f'The auxiliary head pools 5x5 windows but its input is '
          f'{x.shape[1]}x{x.shape[2]}; use larger images or no auxiliary '
          'head (search: model.aux_weight=0; retraining: model.auxiliary='
          'False).')
    x = lax.reduce_window(jax.nn.relu(x), 0.0, lax.add, (1, 5, 5, 1),
                          (1, 3, 3, 1), 'VALID') / 25.0
    x = jax.nn.relu(Conv1x1BN(128, relu=False, name='proj')(x))
    hw, c = x.shape[1], x.shape[-1]
    w = self.param('conv', ops.he_init(hw * hw * c), (hw, hw, c, 768))
    x = jax.nn.relu(BatchNorm(False, name='bn')(ops.conv(x, w)))
    return classifier(self, jnp.mean(x, (1, 2)), self.num_classes)


def classifier(module, x, num_classes):
  w = module.param('fc', ops.he_init(x.shape[-1]), (x.shape[-1], num_classes))
  return x @ w


def stem(module, x, channels, running, train):
  w = module.param('stem', ops.he_init(9 * x.shape[-1]),
                   (3, 3, x.shape[-1], channels))
  return BatchNorm(running, name='stem_bn')(ops.conv(x, w), train)


def dropout(module, x, keep_prob, train):
  if not train or keep_prob >= 1.0:
    return x
  return nn.Dropout(1.0 - keep_prob, deterministic=False)(
      x, rng=module.make_rng('dropout'))


class MicroChild(nn.Module):
  """The micro search child (shared weights) or, with `arc`, a fixed one.

  Attributes:
    space: the `MicroSpace` (nodes per cell).
    channels: F of the first cells (20 in the reference search).
    num_layers: L; the network has L + 2 cells.
    num_classes: classifier outputs.
    aux_head: build the auxiliary head (training only).
    keep_prob: dropout keep probability before the classifier.
    arc: a concrete arc [2, 4B] (as nested tuples) for a fixed network.
  """
  space: MicroSpace
  channels: int = 20
  num_layers: int = 6
  num_classes: int = 10
  aux_head: bool = True
  keep_prob: float = 0.9
  arc: tuple[tuple[int, ...], ...] | None = None

  @property
  def reduction_layers(self) -> tuple[int, int]:
    d = self.num_layers // 3
    return (d, 2 * d + 1)

  @nn.compact
  def __call__(self, x, arc, train: bool, drop_rate=None):
    """Logits [B, classes]; in training (logits, aux logits or None).

    `arc`: int [2, 4B] (ignored when the network is fixed: pass None);
    `drop_rate`: traced drop-path rate at the last cell (None: off).
    """
    f = self.channels
    s1 = stem(self, x, 3 * f, False, train)
    s0, aux = s1, None
    cells = self.num_layers + 2
    for layer in range(cells):
      reduction = layer in self.reduction_layers
      if reduction:
        f *= 2
        s0, s1 = s1, Reduce(f, name=f'reduce{layer}')(s1)
      row = int(reduction)
      fixed = None if self.arc is None else tuple(self.arc[row])
      out = MicroCell(self.space.num_nodes, f, (layer + 1) / cells, fixed,
                      name=f'cell{layer}')(
                          s0, s1, None if fixed else arc[row],
                          drop_rate if train else None)
      s0, s1 = s1, out
      if self.aux_head and train and layer == self.reduction_layers[1] + 1:
        aux = AuxHead(self.num_classes, name='aux_head')(out)
    h = dropout(self, jnp.mean(jax.nn.relu(s1), (1, 2)), self.keep_prob,
                 train)
    logits = classifier(self, h, self.num_classes)
    return (logits, aux) if train else logits


def _macro_branch(op, x, w, stats, train, update, switched=False):
  """Macro op `op` (static) with weights `w` and BN statistics `stats`;
  `switched`: a branch of the shared child's switch (`ops.conv_in_switch`).

  Returns (y, new stats)."""
  new = dict(stats)
  y, new['inp'] = ops.bn(ops.conv(x, w['inp']), w['inp_bn'], stats['inp'],
                         train=train, update=update)
  y = jax.nn.relu(y)
  if op < len(MACRO_KERNELS):
    conv = ops.conv_in_switch if switched else ops.conv
    y = (ops.separable(y, w['dw'], w['pw']) if op in (1, 3) else
         conv(y, w['w']))
    y, new['out'] = ops.bn(y, w['out_bn'], stats['out'], train=train,
                           eps=1e-3, update=update)
    return jax.nn.relu(y), new
  return (ops.avg_pool(y) if op == 4 else ops.max_pool(y)), new


class MacroLayer(nn.Module):
  """One macro layer's op: all 6 ops' weights and `lax.switch` (traced op),
  or only op `fixed`'s weights."""
  channels: int
  num_ops: int = 6
  fixed: int | None = None

  def _weights(self, op, c_in):
    f, prefix = self.channels, '' if self.fixed is not None else f'op{op}_'
    bn = lambda: {'scale': jnp.ones((f,)), 'offset': jnp.zeros((f,))}
    stats = lambda: {'mean': jnp.zeros((f,)), 'var': jnp.ones((f,))}
    w = {'inp': self.param(f'{prefix}inp', ops.he_init(c_in), (c_in, f)),
         'inp_bn': self.param(f'{prefix}inp_bn', lambda k: bn())}
    s = {'inp': self.variable('batch_stats', f'{prefix}inp', stats)}
    if op < len(MACRO_KERNELS):
      k = MACRO_KERNELS[op]
      if op in (1, 3):
        w['dw'] = self.param(f'{prefix}dw', ops.he_init(k * k), (k, k, f))
        w['pw'] = self.param(f'{prefix}pw', ops.he_init(f), (f, f))
      else:
        w['w'] = self.param(f'{prefix}w', ops.he_init(k * k * f), (k, k, f, f))
      w['out_bn'] = self.param(f'{prefix}out_bn', lambda k: bn())
      s['out'] = self.variable('batch_stats', f'{prefix}out', stats)
    return w, s

  @nn.compact
  def __call__(self, x, op, train: bool):
    update = train and not self.is_initializing()
    if self.fixed is not None:
      w, s = self._weights(self.fixed, x.shape[-1])
      y, new = _macro_branch(self.fixed, x, w, {k: v.value for k, v in
                                                s.items()}, train, update)
    else:
      ws, ss = zip(*[self._weights(k, x.shape[-1])
                     for k in range(self.num_ops)])
      values = tuple({k: v.value for k, v in s.items()} for s in ss)

      def branch(k):
        def fn(x, ws, values):
          y, new = _macro_branch(k, x, ws[k], values[k], train, update,
                                 switched=True)
          return y, values[:k] + (new,) + values[k + 1:]
        return fn

      y, news = ops.switch(tuple(branch(k) for k in range(self.num_ops)), op,
                           x, ws, values)
      s, new = {}, {}
      for k in range(self.num_ops):
        s.update({(k, n): v for n, v in ss[k].items()})
        new.update({(k, n): v for n, v in news[k].items()})
    if update:
      for key, var in s.items():
        var.value = new[key]
    return y


class MacroChild(nn.Module):
  """The macro search child (shared weights) or, with `arc`, a fixed one.

  Attributes:
    space: the `MacroSpace` (layers, ops).
    channels: F (36 in the reference search).
    num_classes: classifier outputs.
    keep_prob: dropout keep probability before the classifier.
    arc: a concrete `MacroArc` for a fixed network.
  """
  space: MacroSpace
  channels: int = 36
  num_classes: int = 10
  keep_prob: float = 0.9
  arc: 'MacroArc | None' = None

  @property
  def reduction_layers(self) -> tuple[int, int]:
    d = self.space.num_layers // 3
    return (d - 1, 2 * d - 1)

  @nn.compact
  def __call__(self, x, arc, train: bool, drop_rate=None):
    """Logits [B, classes]; in training (logits, None). `drop_rate` unused."""
    del drop_rate
    f, n = self.channels, self.space.num_layers
    states = [stem(self, x, f, True, train)]
    for i in range(n):
      if self.arc is None:
        y = MacroLayer(f, len(self.space.ops), name=f'layer{i}')(
            states[-1], arc['ops'][i], train)
        if i > 0:
          chosen = arc['skips'][i, :i].astype(y.dtype)
          y = y + jnp.einsum('j,jbhwc->bhwc', chosen, jnp.stack(states[:i]))
      else:
        y = MacroLayer(f, len(self.space.ops), self.arc.ops[i],
                       name=f'layer{i}')(states[-1], None, train)
        for j in range(i):
          if self.arc.skips[i][j]:
            y = y + states[j]
      if i > 0:
        y = BatchNorm(True, name=f'skip_bn{i}')(y, train)
      states.append(y)
      if i in self.reduction_layers:
        states = [Reduce(f, running=True, name=f'reduce{i}_from{j}')(s, train)
                  for j, s in enumerate(states)]
    h = dropout(self, jnp.mean(states[-1], (1, 2)), self.keep_prob, train)
    logits = classifier(self, h, self.num_classes)
    return (logits, None) if train else logits


class MacroArc(NamedTuple):
  """A concrete macro arc as tuples (the `arc` of a fixed MacroChild)."""
  ops: tuple[int, ...]
  skips: tuple[tuple[int, ...], ...]


def static_arc(arc):
  """A concrete arc as tuples: the `arc` attribute of a fixed network."""
  if isinstance(arc, MacroArc):
    return arc
  if isinstance(arc, dict):
    return MacroArc(tuple(int(o) for o in np.asarray(arc['ops'])),
                    tuple(tuple(int(s) for s in row)
                          for row in np.asarray(arc['skips'])))
  return tuple(tuple(int(t) for t in row) for row in np.asarray(arc))


def child(space, arc=None, **kwargs) -> nn.Module:
  """The shared child of `space`, or the fixed network of `arc`."""
  cls = MicroChild if isinstance(space, MicroSpace) else MacroChild
  return cls(space, arc=None if arc is None else static_arc(arc), **kwargs)


def fixed_params(space, params, arc, batch_stats=None):
  """The weights of `arc`'s fixed network, sliced out of a shared child's.

  Returns params (and batch_stats when given) in the fixed network's layout.
  """
  arc = static_arc(arc)
  if isinstance(space, MicroSpace):
    return _micro_slice(space, params, arc)
  return _macro_slice(space, params, arc, batch_stats)


def _micro_slice(space, params, arc):
  b = space.num_nodes
  red = MicroChild(space, num_layers=_layers_from(params)).reduction_layers
  out = {}
  for name, cell in params.items():
    if not name.startswith('cell'):
      out[name] = cell
      continue
    tokens = arc[1] if int(name[4:]) in red else arc[0]
    new = {k: v for k, v in cell.items()
           if not k.startswith('sep') and k != 'final_conv'}
    used = set()
    for i in range(b):
      for s, slot in enumerate('xy'):
        idx, op = tokens[4 * i + 2 * s], tokens[4 * i + 2 * s + 1]
        used.add(idx)
        if op < len(MICRO_CONV):
          for part in ('dw', 'pw', 'scale', 'offset'):
            bank = cell[f'sep{MICRO_CONV[op]}_{part}']
            new[f'node{i}_{slot}_{part}'] = bank[2 * i + s, idx]
    loose = [j for j in range(b + 2) if j not in used]
    new['final_conv'] = jnp.concatenate([cell['final_conv'][j]
                                         for j in loose], 0)
    out[name] = new
  return out


def _layers_from(params) -> int:
  return sum(k.startswith('cell') for k in params) - 2


def _macro_slice(space, params, arc, batch_stats):
  del space

  def take(tree):
    out = {}
    for name, sub in tree.items():
      if name.startswith('layer'):
        prefix = f'op{arc.ops[int(name[5:])]}_'
        out[name] = {k[len(prefix):]: v for k, v in sub.items()
                     if k.startswith(prefix)}
      else:
        out[name] = sub
    return out

  return take(params) if batch_stats is None else (take(params),
                                                   take(batch_stats))


def _unreadable(name: str, shape) -> int:
  """Weights of a shared micro cell's separable bank [2B, B + 2, ...] that
  no slot can read (slot 2i + s reads states 0..i + 1 only)."""
  if not (name.startswith('sep') and len(shape) > 2 and shape[0] % 2 == 0
          and shape[1] == shape[0] // 2 + 2):
    return 0
  b, per = shape[0] // 2, int(np.prod(shape[2:]))
  return sum(b - t // 2 for t in range(2 * b)) * per


def param_count(params, exclude: Sequence[str] = ('aux_head',)) -> int:
  """Weights, leaving out `exclude`d top-level entries (the aux head) and,
  in the shared micro child, the bank rows no node can read: the count the
  reference allocates (5,373,140 for its micro search child; the banks
  hold 9,261,140, `layers.param_count` of the same tree)."""
  kept = {k: v for k, v in params.items() if k not in exclude}
  unread = sum(_unreadable(str(path[-1].key), leaf.shape)
               for path, leaf in jax.tree_util.tree_leaves_with_path(kept))
  return layers.param_count(kept) - unread
