"""Recurrent cells (DARTS's search and discrete cells, ENAS's shared cell),
the language model around them, and its loss family.

The cell (Liu et al., 2019, A.1.2; the reference's rnn/model.py and
model_search.py), with x_t the input and h the previous hidden state:

  [c0 | h0] = [x_t * m_x, h * m_h] @ W0,  s0 = h + sigmoid(c0) (tanh(h0) - h)
  node i:  [c | g] = (s_j * m_h) @ W_i,   s_i = s_j + sigmoid(c) (f(g) - s_j)
  h_t = mean of the output nodes

m_x and m_h are variational dropout masks drawn once per forward and shared
over time. In the search cell every node mixes all its predecessors j and all
activations f with softmax(alpha) weights; the incoming edges of a node share
its W_i, and s0 and every node pass through an affine-free BatchNorm (batch
statistics in training, running statistics in evaluation, updated at every
use with PyTorch's momentum). The running statistics are kept per node: the
reference's one BatchNorm module pools them over s0 and all nodes, so its
evaluation mode normalises every node with the same statistics, which fit
none of them (on small models the evaluated perplexity is then no better
than chance); training mode is the same either way. A discrete cell takes one (f, j) per node from a
`RecurrentGenotype` and has no BatchNorm. The time loop is one `lax.scan`.

`SharedCell` is ENAS's search cell: the same highway nodes, each reading
one predecessor through weights kept per (node, predecessor, activation),
the arc a traced input.

`RNNModel` is the reference's language model: a [vocab, units] embedding
(with row dropout, `dropout_e`), locked dropout on the embeddings
(`dropout_i`) and on the cell's outputs (`dropout`), the cell, and a decoder
tied to the embedding (one bias per word). Inputs are batch-major: tokens
[batch, time], hidden [batch, units].

`LanguageModel` is the family the bilevel step (`nasjax.bilevel`) takes:
token windows, the hidden state carried from window to window per stream,
cross-entropy plus temporal activation regularisation on the training
stream, and the weight update scaled by seq_len / bptt.
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nasjax.genotype.recurrent import RecurrentGenotype
from nasjax.search_spaces import darts_rnn

INIT_RANGE = 0.04
BN_MOMENTUM = 0.1   # PyTorch's convention: new = 0.9 old + 0.1 batch.
BN_EPS = 1e-5
ACTIVATIONS = {'tanh': jnp.tanh, 'relu': jax.nn.relu,
               'sigmoid': jax.nn.sigmoid, 'identity': lambda x: x}


def _uniform(scale):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


def _mask(rng, shape, drop: float, dtype):
  """Inverted-dropout mask: 0 with probability `drop`, else 1 / (1 - drop)."""
  keep = 1.0 - drop
  return jax.random.bernoulli(rng, keep, shape).astype(dtype) / keep


def _batch_norm(x, mean, var, train: bool):
  """Affine-free BatchNorm over the batch axis of [batch, units]; returns the
  output and the running statistics after this use."""
  if not train:
    return (x - mean) * jax.lax.rsqrt(var + BN_EPS), mean, var
  m, v = x.mean(0), x.var(0)
  n = x.shape[0]
  mean = (1 - BN_MOMENTUM) * mean + BN_MOMENTUM * m
  var = (1 - BN_MOMENTUM) * var + BN_MOMENTUM * v * (n / max(n - 1, 1))
  return (x - m) * jax.lax.rsqrt(v + BN_EPS), mean, var


def _node_norm(x, stats, node: int, train: bool):
  """`_batch_norm` of node `node` with its row of the running statistics."""
  mean, var = stats
  y, m, v = _batch_norm(x, mean[node], var[node], train)
  return y, (mean.at[node].set(m), var.at[node].set(v))


def _highway(s, ch, act, units):
  """s + sigmoid(c) (act(g) - s), with [c | g] = ch."""
  c = jax.nn.sigmoid(ch[..., :units])
  return s + c * (act(ch[..., units:]) - s)


class RecurrentCell(nn.Module):
  """The search cell (`genotype` None, alpha given) or a discrete cell.

  __call__(inputs [B, T, D], hidden [B, H], alpha, train) ->
  (outputs [B, T, H], last hidden [B, H]). `batch_norm_train` (default:
  `train`) picks batch statistics for the search cell's BatchNorm
  independently of dropout.
  """
  units: int
  genotype: RecurrentGenotype | None = None
  space: darts_rnn.DartsRnnSpace = darts_rnn.DartsRnnSpace()
  dropout_x: float = 0.75
  dropout_h: float = 0.25

  @nn.compact
  def __call__(self, inputs, hidden, alpha=None, train: bool = False,
               batch_norm_train: bool | None = None):
    units, search = self.units, self.genotype is None
    # BatchNorm with batch statistics (training) or running ones.
    bn_train = train if batch_norm_train is None else batch_norm_train
    steps = self.space.steps if search else self.genotype.steps
    dtype = inputs.dtype
    w0 = self.param('w0', _uniform(INIT_RANGE),
                    (inputs.shape[-1] + units, 2 * units)).astype(dtype)
    ws = self.param('ws', _uniform(INIT_RANGE),
                    (steps, units, 2 * units)).astype(dtype)
    batch = inputs.shape[0]
    if train:
      kx, kh = jax.random.split(self.make_rng('dropout'))
      mx = _mask(kx, (batch, inputs.shape[-1]), self.dropout_x, dtype)
      mh = _mask(kh, (batch, units), self.dropout_h, dtype)
    else:
      mx = mh = None
    if search:
      if alpha is None:
        raise ValueError('The search cell needs alpha.')
      # Running statistics per node (s0 and each intermediate node).
      mean = self.variable('batch_stats', 'mean', jnp.zeros,
                           (steps + 1, units))
      var = self.variable('batch_stats', 'var', jnp.ones, (steps + 1, units))
      stats = (mean.value.astype(dtype), var.value.astype(dtype))
      probs = jax.nn.softmax(alpha[darts_rnn.CELL].astype(dtype), -1)
    else:
      stats = ()

    def cell(carry, x):
      h, stats = carry
      xh = jnp.concatenate([x * mx, h * mh] if train else [x, h], -1)
      s0 = _highway(h, xh @ w0, jnp.tanh, units)
      if search:
        s0, stats = _node_norm(s0, stats, 0, bn_train)
      states = [s0]
      for i in range(1, steps + 1):
        if search:
          prev = jnp.stack(states)                        # [i, B, H]
          ch = (prev * mh if train else prev) @ ws[i - 1]  # [i, B, 2H]
          # sum_j sum_f p_jf (s_j + c_j (f(g_j) - s_j)), 'none' adding 0.
          p = probs[self.space.offset(i):self.space.offset(i) + i, 1:]
          c, g = jax.nn.sigmoid(ch[..., :units]), ch[..., units:]
          acts = jnp.stack([ACTIVATIONS[n](g) for n in self.space.primitives[1:]])
          mixed = jnp.einsum('jf,fjbh->jbh', p, acts)
          kept = p.sum(-1)[:, None, None] * prev
          s, stats = _node_norm(jnp.sum(kept + c * (mixed - kept), 0),
                                stats, i, bn_train)
        else:
          name, j = self.genotype.recurrent[i - 1]
          prev = states[j]
          ch = (prev * mh if train else prev) @ ws[i - 1]
          s = _highway(prev, ch, ACTIVATIONS[name], units)
        states.append(s)
      concat = (range(1, steps + 1) if search else self.genotype.concat)
      out = jnp.mean(jnp.stack([states[c] for c in concat]), 0)
      return (out, tuple(stats)), out

    (last, stats), outputs = jax.lax.scan(
        cell, (hidden.astype(dtype), stats), jnp.swapaxes(inputs, 0, 1))
    if search and train and self.is_mutable_collection('batch_stats'):
      mean.value, var.value = stats
    return jnp.swapaxes(outputs, 0, 1), last


class SharedCell(nn.Module):
  """The ENAS recurrent cell with shared weights (Pham et al., 2018; the
  corrected reference `enas_lm/src/child.py`): node 0 is the highway layer
  above (tanh), node i = 1..N reads node `arc[i-1, 0]` through the matrix of
  (i, that predecessor, activation `arc[i-1, 1]`) and applies the
  activation; the output is the mean of `space.concat(arc)`. One
  [H, 2H] matrix per (node, predecessor, activation), as the reference
  allocates them: `ws` [num_edges, num_ops, H, 2H], edge (i, j) at
  `space.offset(i) + j`. The arc is a traced int array [N, 2], so one
  compiled program serves every arc; no BatchNorm (the corrected reference
  has none).

  __call__(inputs [B, T, D], hidden [B, H], arc, train) ->
  (outputs [B, T, H], last hidden [B, H]).
  """
  units: int
  space: object  # search_spaces.enas.RecurrentSpace
  dropout_x: float = 0.75
  dropout_h: float = 0.25

  @nn.compact
  def __call__(self, inputs, hidden, arc, train: bool = False,
               batch_norm_train: bool | None = None):
    del batch_norm_train  # No BatchNorm.
    if arc is None:
      raise ValueError('The shared ENAS cell needs an arc.')
    units, sp = self.units, self.space
    n, dtype = sp.num_nodes, inputs.dtype
    w0 = self.param('w0', _uniform(INIT_RANGE),
                    (inputs.shape[-1] + units, 2 * units)).astype(dtype)
    ws = self.param('ws', _uniform(INIT_RANGE),
                    (sp.num_edges, len(sp.ops), units, 2 * units))
    arc = jnp.asarray(arc, jnp.int32)
    prev, ops = arc[:, 0], arc[:, 1]
    offsets = jnp.asarray([sp.offset(i) for i in range(1, n + 1)])
    w = ws[offsets + prev, ops].astype(dtype)            # [N, H, 2H]
    reads = jnp.zeros((n + 1,), bool).at[prev].set(True)
    if sp.output == 'all':
      weights = jnp.ones((n,), dtype)
    else:
      weights = (~reads[1:]).astype(dtype)
    weights = weights / jnp.sum(weights)
    acts = [ACTIVATIONS[name] for name in sp.ops]
    batch = inputs.shape[0]
    if train:
      kx, kh = jax.random.split(self.make_rng('dropout'))
      mx = _mask(kx, (batch, inputs.shape[-1]), self.dropout_x, dtype)
      mh = _mask(kh, (batch, units), self.dropout_h, dtype)

    def cell(h, x):
      xh = jnp.concatenate([x * mx, h * mh] if train else [x, h], -1)
      states = [_highway(h, xh @ w0, jnp.tanh, units)]
      for i in range(1, n + 1):
        s = jnp.stack(states)[prev[i - 1]]
        ch = (s * mh if train else s) @ w[i - 1]
        g = ch[..., units:]
        f = jnp.stack([a(g) for a in acts])[ops[i - 1]]
        states.append(s + jax.nn.sigmoid(ch[..., :units]) * (f - s))
      out = jnp.einsum('n,nbh->bh', weights, jnp.stack(states[1:]))
      return out, out

    last, outputs = jax.lax.scan(cell, hidden.astype(dtype),
                                 jnp.swapaxes(inputs, 0, 1))
    return jnp.swapaxes(outputs, 0, 1), last


class RNNModel(nn.Module):
  """The language model. __call__(tokens [B, T], hidden [B, H], alpha,
  train) -> (logits [B, T, vocab], last hidden [B, H], cell outputs
  [B, T, H] before output dropout, for activation regularisation).

  Defaults are the DARTS search's (rnn/train_search.py); `genotype` None
  builds the search cell; `shared` (an ENAS `RecurrentSpace`) builds the
  ENAS shared cell, whose arc is passed where alpha is.
  """
  vocab_size: int
  units: int = 300
  genotype: RecurrentGenotype | None = None
  space: darts_rnn.DartsRnnSpace = darts_rnn.DartsRnnSpace()
  dropout: float = 0.75
  dropout_h: float = 0.25
  dropout_x: float = 0.75
  dropout_i: float = 0.2
  dropout_e: float = 0.0
  shared: object | None = None  # An ENAS RecurrentSpace: `SharedCell`.

  @nn.compact
  def __call__(self, tokens, hidden, alpha=None, train: bool = False,
               batch_norm_train: bool | None = None):
    table = jnp.asarray(self.param('embedding', _uniform(INIT_RANGE),
                                   (self.vocab_size, self.units)))
    lookup = table
    if train and self.dropout_e:
      lookup = table * _mask(self.make_rng('dropout'), (self.vocab_size, 1),
                             self.dropout_e, table.dtype)
    x = lookup[tokens]
    batch = tokens.shape[0]
    if train and self.dropout_i:
      x = x * _mask(self.make_rng('dropout'), (batch, 1, self.units),
                    self.dropout_i, x.dtype)
    if self.shared is not None:
      cell = SharedCell(self.units, self.shared, self.dropout_x,
                        self.dropout_h, name='cell')
    else:
      cell = RecurrentCell(self.units, self.genotype, self.space,
                           self.dropout_x, self.dropout_h, name='cell')
    raw, last = cell(x, hidden, alpha, train, batch_norm_train)
    out = raw
    if train and self.dropout:
      out = out * _mask(self.make_rng('dropout'), (batch, 1, self.units),
                        self.dropout, out.dtype)
    bias = self.param('decoder_bias', nn.initializers.zeros,
                      (self.vocab_size,))
    logits = out @ table.T + bias.astype(out.dtype)
    return logits, last, raw


def init_alpha(space: darts_rnn.DartsRnnSpace, rng) -> dict:
  """alpha ~ 1e-3 N(0, 1), as the reference initialises it."""
  shape = space.alpha_shapes()[darts_rnn.CELL]
  return {darts_rnn.CELL: 1e-3 * jax.random.normal(rng, shape)}


@dataclasses.dataclass(frozen=True)
class LanguageModel:
  """The language-model family of the bilevel step (`step.Family`).

  Batches are {'inputs', 'targets'}: token windows [rows, seq_len], and
  optionally 'mask' [rows, seq_len] (1 for the tokens of a window padded to
  a fixed length: the loss, the carried hidden state and the update scale
  are those of the unpadded window; retraining pads its variable lengths to
  a few buckets, so a few programs serve every length). The
  stream's carry is the hidden state [rows, units] after its previous window
  (`SearchState.carry['train' | 'val']`); it is an input of the step, a
  constant of its derivatives (the reference detaches it too).

  The training stream's loss is cross-entropy plus `tar` times the
  temporal activation regularisation (mean squared change of the cell's
  outputs over time; the reference's activation regularisation has weight 0
  in every DARTS setting and is not built); the validation stream's loss is the cross-entropy alone. The reference's
  architect uses the plain cross-entropy in its virtual step, where this
  step unrolls the real training loss (docs/from_reference_code.md). Every
  pass draws its dropout masks from the step's key, so the virtual step and
  the real step use the same masks. The weight update of a window of
  seq_len tokens is scaled by seq_len / bptt (the reference rescales the
  SGD learning rate).
  """
  model: RNNModel
  bptt: int
  tar: float = 1e-3

  def prepare(self, rng, step, salt, batch, carry):
    if carry is None:
      raise ValueError('A language model step needs the hidden states in '
                       "state.carry['train'] and state.carry['val'].")
    inputs = {'inputs': batch['inputs'], 'targets': batch['targets'],
              'hidden': carry,
              'rng': jax.random.fold_in(jax.random.fold_in(rng, step), salt),
              'training': jnp.equal(salt, 0)}
    if 'mask' in batch:
      inputs['mask'] = batch['mask']
    return inputs

  def loss(self, params, batch_stats, alpha, inputs):
    (logits, last, raw), updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, inputs['inputs'],
        inputs['hidden'], alpha, train=True,
        rngs={'dropout': inputs['rng']}, mutable=['batch_stats'])
    ce = optax.softmax_cross_entropy_with_integer_labels(
        logits, inputs['targets'])
    diff = jnp.square(raw[:, 1:] - raw[:, :-1]).mean(-1)
    if 'mask' in inputs:  # A window padded to its length bucket.
      mask = inputs['mask'].astype(ce.dtype)
      ce = jnp.sum(ce * mask) / jnp.sum(mask)
      pairs = mask[:, 1:]
      tar = jnp.sum(diff * pairs) / jnp.maximum(jnp.sum(pairs), 1)
      last_index = jnp.sum(inputs['mask'], 1).astype(jnp.int32) - 1
      last = jnp.take_along_axis(raw, last_index[:, None, None], 1)[:, 0]
    else:
      ce, tar = ce.mean(), diff.mean()
    loss = ce + jnp.where(inputs['training'], self.tar * tar, 0.0)
    return loss, (updates.get('batch_stats', {}),
                  {'carry': jax.lax.stop_gradient(last), 'ce': ce})

  def metrics(self, aux, inputs):
    del inputs
    return {'ce': aux['ce']}

  def update_scale(self, inputs):
    """seq_len / bptt: the window's length, or its unpadded length."""
    if 'mask' in inputs:
      return jnp.mean(inputs['mask'].astype(jnp.float32).sum(1)) / self.bptt
    return inputs['inputs'].shape[1] / self.bptt


def perplexity(ce: float) -> float:
  """exp(cross-entropy), capped at exp(50) so a diverged model reads as a
  huge number instead of overflowing (NaN stays NaN)."""
  return math.exp(min(ce, 50.0))


def initial_carry(rows: dict[str, int], units: int, dtype=np.float32):
  """Zero hidden states per stream, e.g. {'train': 256, 'val': 256} rows
  (host arrays: `parallel.replicate` them, or return them from a jitted
  init)."""
  return {k: np.zeros((n, units), dtype) for k, n in rows.items()}


def evaluate(model: RNNModel, params, batch_stats, alpha, data, *,
             bptt: int, batch_norm_train: bool = False):
  """Mean cross-entropy over every next-token target of `data` [rows, N],
  read in windows of `bptt` with the hidden state carried from zero, in
  evaluation mode (no dropout; the search cell's BatchNorm with running
  statistics, or with each time step's batch statistics over the rows if
  `batch_norm_train`): the perplexity is its exp. One `lax.scan` over the
  windows; the last window is padded and its padding masked. jit it with
  `bptt` and `batch_norm_train` static."""
  rows, n = data.shape
  windows = -(-(n - 1) // bptt)
  data = jnp.pad(data, ((0, 0), (0, windows * bptt + 1 - n)))
  split = lambda a: jnp.swapaxes(a.reshape(rows, windows, bptt), 0, 1)
  inputs, targets = split(data[:, :-1]), split(data[:, 1:])
  mask = split(jnp.broadcast_to(jnp.arange(windows * bptt) < n - 1,
                                (rows, windows * bptt)))
  variables = {'params': params, 'batch_stats': batch_stats}

  def window(h, xs):
    x, y, m = xs
    logits, h, _ = model.apply(variables, x, h, alpha, train=False,
                               batch_norm_train=batch_norm_train)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return h, jnp.sum(jnp.where(m, ce, 0.0))

  h0 = jnp.zeros((rows, model.units), params['embedding'].dtype)
  _, sums = jax.lax.scan(window, h0, (inputs, targets, mask))
  return sums.sum() / (rows * (n - 1))
