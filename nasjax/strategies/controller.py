"""ENAS controllers: the reference's LSTM samplers as pure, jittable functions.

The parameters come from Flax modules and compute the same function as the
reference TF code (`melodyguan/enas`, `src/common_ops.py` and
`src/cifar10/{micro,general}_controller.py`), so trained reference weights
map onto ours one to one:

| reference variable | here | shape |
|---|---|---|
| `lstm/layer_0/w` | `lstm/kernel` | [2H, 4H]: gates `concat([x, h]) @ W`, split i, f, o, g; no bias |
| `g_emb` | `g_emb` | [1, H] stored as [H] |
| `emb/w` | `w_emb` | [ops, H] |
| `softmax/w`, `softmax/b` (micro) | `w_soft`, `b_soft` | [H, ops], [ops] (micro b init [10, 10, 0, 0, 0]: `OP_BIAS`) |
| `attention/w_1`, `w_2`, `v` | `w_attn_1`, `w_attn_2`, `v_attn` | [H, H], [H, H], [H, 1] stored as [H] |

All weights start uniform(-0.1, 0.1), as in the reference.

Over a one-shot space's cell (`OpSequence`: E edges of K ops, NAS-Bench-201's
6 x 5) the controller is the macro one without skips, as AutoDL-Projects'
NB201 ENAS (`search_model_enas_utils.Controller`) samples it: per edge, the
LSTM output through `w_soft` (no bias), temperature and tanh constant, the
chosen op's embedding as the next input (AutoDL stacks 2 LSTM layers of 32
units; this is the reference's one layer). The arc is int [E] per cell type.
Over the DARTS cell it is the micro controller
(`search_spaces.darts_cell_one_shot.CellDecisions`: a `MicroSpace` of 4
nodes and DARTS's 7 ops without `none`, op biases by name).

The recurrent (PTB) controller is the corrected reference's
(`google-research/google-research`, `enas_lm/src/controller.py`): the same
LSTM, embeddings and attention, no `w_soft` (the activation logits are
h @ w_emb^T), the distance prior (i - j)^2 / 6 on the input logits,
temperature 5 and tanh constant 2.25 on both (`RECURRENT`), weights
uniform(-0.01, 0.01).

`sample(params, key)` and `log_prob(params, arc)` (teacher forcing: the same
pass with the actions given) run as one `lax.scan` over nodes or layers
(`most_likely(params)` the same pass taking each decision's argmax),
with a padded anchor buffer and masks so every shape is static; `jax.vmap`
them over keys or arcs to sample and score many children in one call.
Both return `Sample(arc, log_prob, entropy, skip_penalty, skips)`:

* `log_prob`: the log-probability of the arc (the reference's
  `sample_log_prob` is its negative);
* `entropy`: micro and `OpSequence` (AutoDL's), the full categorical
  entropy of every decision, summed;
  macro and recurrent, (-log p) p of each sampled token, summed (the
  reference's two conventions);
* `skip_penalty` (macro): per layer i > 0, sum over j < i of
  KL(Bernoulli(p_ij) || Bernoulli(target)), averaged over the layers. By
  default p_ij is the skip probability actually sampled, softmax([-q, q])[1]
  = sigmoid(2q); `skip_penalty_form='reference'` uses sigmoid(q) as the
  reference does, which pulls the real skip rate to about 0.31 for a 0.4
  target.
"""

import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nasjax.mixing import OpSequence

# The micro controller's op biases, by op name: (the initial value of the
# learnt bias `b_soft`, the normal cell's fixed bias added after the tanh).
# The reference's 5 ops are, in order, (10, 0.25), (10, 0.25), (0, -0.25),
# (0, -0.25), (0, -0.25); the DARTS cell's skip_connect is ENAS's identity,
# and ops ENAS does not have (dilated convolutions) start at (0, 0).
OP_BIAS = {'sep_conv_3x3': (10.0, 0.25), 'sep_conv_5x5': (10.0, 0.25),
           'avg_pool_3x3': (0.0, -0.25), 'max_pool_3x3': (0.0, -0.25),
           'identity': (0.0, -0.25), 'skip_connect': (0.0, -0.25)}


def op_bias(ops) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(b_soft's initial value, the normal cell's fixed bias) of micro ops."""
  pairs = [OP_BIAS.get(op, (0.0, 0.0)) for op in ops]
  return tuple(b for b, _ in pairs), tuple(f for _, f in pairs)


def _uniform(scale):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


class LSTMCell(nn.Module):
  """The reference's LSTM cell: gates from [x, h] @ W (no bias), i f o g."""
  size: int
  init_scale: float = 0.1

  @nn.compact
  def __call__(self, carry, x):
    c, h = carry
    w = self.param('kernel', _uniform(self.init_scale),
                   (2 * self.size, 4 * self.size))
    i, f, o, g = jnp.split(jnp.concatenate([x, h], -1) @ w, 4, -1)
    c = jax.nn.sigmoid(i) * jnp.tanh(g) + jax.nn.sigmoid(f) * c
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return c, h


class ControllerParams(nn.Module):
  """Creates a controller's parameters (see the module docstring)."""
  num_ops: int
  size: int = 64
  op_bias_init: tuple[float, ...] | None = None  # micro: `op_bias`
  init_scale: float = 0.1
  # False: the op logits are h @ w_emb^T (the recurrent controller).
  softmax: bool = True

  @nn.compact
  def __call__(self):
    h = self.size
    zero = jnp.zeros((h,))
    LSTMCell(h, self.init_scale, name='lstm')((zero, zero), zero)
    shapes = [('g_emb', (h,)), ('w_emb', (self.num_ops, h)),
              ('w_soft', (h, self.num_ops)), ('w_attn_1', (h, h)),
              ('w_attn_2', (h, h)), ('v_attn', (h,))]
    p = {name: self.param(name, _uniform(self.init_scale), shape)
         for name, shape in shapes if self.softmax or name != 'w_soft'}
    if self.op_bias_init is not None:
      p['b_soft'] = self.param(
          'b_soft', lambda k, s: jnp.asarray(self.op_bias_init, jnp.float32),
          (self.num_ops,))
    return p


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
  """The reference's settings: micro search (default) or macro search."""
  lstm_size: int = 64
  temperature: float | None = None
  tanh_constant: float | None = 1.1
  op_tanh_reduce: float = 2.5            # micro op logits: tanh_c / this
  skip_target: float = 0.4               # macro
  skip_penalty_form: str = 'sampled'     # 'sampled' or 'reference'
  init_scale: float = 0.1                # weights ~ uniform(-s, s)

  def __post_init__(self):
    if self.skip_penalty_form not in ('sampled', 'reference'):
      raise ValueError("skip_penalty_form must be 'sampled' or 'reference', "
                       f'got {self.skip_penalty_form!r}.')


MICRO = ControllerConfig()
MACRO = ControllerConfig(tanh_constant=1.5)
# The corrected reference's PTB controller (enas_lm/src/controller.py).
RECURRENT = ControllerConfig(temperature=5.0, tanh_constant=2.25,
                             init_scale=0.01)
# The distance prior of the recurrent controller: (i - j)^2 / this is
# subtracted from the logit of node i reading node j.
DISTANCE_PRIOR = 6.0


class Sample(NamedTuple):
  arc: object               # micro: int [2, 4B]; macro: {'ops', 'skips'}
  log_prob: jax.Array
  entropy: jax.Array
  skip_penalty: jax.Array   # 0 for micro
  skips: jax.Array          # number of skips (macro), 0 for micro


def init(key, space, config: ControllerConfig = MICRO) -> dict:
  """The controller's parameters for `space` (a MicroSpace, MacroSpace,
  RecurrentSpace of `nasjax.search_spaces.enas`, or an OpSequence; the
  sampler is chosen by its `controller_kind`)."""
  micro = _kind(space) == 'micro'
  bias = op_bias(space.ops)[0] if micro else None
  return ControllerParams(
      len(space.ops), config.lstm_size, bias, config.init_scale,
      softmax=_kind(space) != 'recurrent').init(key)['params']


def _lstm(params, carry, x):
  return LSTMCell(x.shape[-1]).apply({'params': params['lstm']}, carry, x)


def _shape(logits, temperature, tanh_constant):
  if temperature is not None:
    logits = logits / temperature
  if tanh_constant is not None:
    logits = tanh_constant * jnp.tanh(logits)
  return logits


def _choose(key, logits, forced, mode):
  """The action of one decision: sampled, given (teacher forcing) or the
  most likely."""
  if mode == 'teacher':
    return forced
  if mode == 'greedy':
    return jnp.argmax(logits, -1)
  return jax.random.categorical(key, logits)


def _decide(logits, mask, key, forced, mode):
  """One categorical decision: (action, log p, full entropy, sample entropy)."""
  logits = jnp.where(mask, logits, -jnp.inf)
  logp_all = jax.nn.log_softmax(logits)
  action = _choose(key, logits, forced, mode)
  logp = logp_all[action]
  full = -jnp.sum(jnp.where(mask, jnp.exp(logp_all) * logp_all, 0.0))
  return action, logp, full, -logp * jnp.exp(logp)


def _micro_cell(params, config, space, carry, key, forced, mode,
                use_bias):
  """One cell's 4B tokens; returns the final (c, h) and the cell's sums."""
  b, hsize = space.num_nodes, config.lstm_size
  states = b + 2
  g = params['g_emb']
  anchors = jnp.zeros((states, hsize))
  w1 = jnp.zeros((states, hsize))
  for k in range(2):  # The two cell inputs: keys from g_emb, values zero.
    carry = _lstm(params, carry, g)
    w1 = w1.at[k].set(carry[1] @ params['w_attn_1'])
  op_tanh = (None if config.tanh_constant is None else
             config.tanh_constant / config.op_tanh_reduce)
  fixed = jnp.asarray(op_bias(space.ops)[1] if use_bias else
                      (0.0,) * len(space.ops))

  def node(scan_carry, inputs):
    carry, anchors, w1 = scan_carry
    i, key, tokens = inputs
    keys = jax.random.split(key, 4)
    mask = jnp.arange(states) < i + 2
    x, out, logp, ent = g, [None] * 4, 0.0, 0.0
    for s in range(2):  # index_1, index_2
      carry = _lstm(params, carry, x)
      q = jnp.tanh(w1 + carry[1] @ params['w_attn_2']) @ params['v_attn']
      q = _shape(q, config.temperature, config.tanh_constant)
      a, lp, full, _ = _decide(q, mask, keys[s], tokens[2 * s], mode)
      out[2 * s], logp, ent, x = a, logp + lp, ent + full, anchors[a]
    for s in range(2):  # op_1, op_2
      carry = _lstm(params, carry, x)
      logits = carry[1] @ params['w_soft'] + params['b_soft']
      logits = _shape(logits, config.temperature, op_tanh) + fixed
      a, lp, full, _ = _decide(logits, jnp.ones(len(space.ops), bool),
                               keys[2 + s], tokens[2 * s + 1], mode)
      out[2 * s + 1], logp, ent, x = a, logp + lp, ent + full, params[
          'w_emb'][a]
    carry = _lstm(params, carry, x)
    anchors = anchors.at[i + 2].set(carry[1])
    w1 = w1.at[i + 2].set(carry[1] @ params['w_attn_1'])
    return (carry, anchors, w1), (jnp.stack(out), logp, ent)

  (carry, _, _), (tokens, logp, ent) = jax.lax.scan(
      node, (carry, anchors, w1),
      (jnp.arange(b), jax.random.split(key, b), forced.reshape(b, 4)))
  return carry, tokens.reshape(-1), logp.sum(), ent.sum()


def _micro(params, space, config, key, forced, mode) -> Sample:
  zero = jnp.zeros((config.lstm_size,))
  k_normal, k_reduce = jax.random.split(key)
  carry, normal, lp1, e1 = _micro_cell(params, config, space, (zero, zero),
                                       k_normal, forced[0], mode, True)
  _, reduce, lp2, e2 = _micro_cell(params, config, space, carry, k_reduce,
                                   forced[1], mode, False)
  z = jnp.zeros(())
  return Sample(jnp.stack([normal, reduce]).astype(jnp.int32), lp1 + lp2,
                e1 + e2, z, z)


def _kl(p, target):
  p = jnp.clip(p, 1e-7, 1 - 1e-7)
  return p * jnp.log(p / target) + (1 - p) * jnp.log((1 - p) / (1 - target))


def _macro(params, space, config, key, forced, mode) -> Sample:
  n, hsize = space.num_layers, config.lstm_size
  g = params['g_emb']
  zero = jnp.zeros((hsize,))

  def layer(scan_carry, inputs):
    carry, x, anchors, w1 = scan_carry
    i, key, f_op, f_skips = inputs
    k_op, k_skip = jax.random.split(key)
    carry = _lstm(params, carry, x)
    logits = _shape(carry[1] @ params['w_soft'], config.temperature,
                    config.tanh_constant)
    op, lp_op, _, ent_op = _decide(logits, jnp.ones(len(space.ops), bool),
                                   k_op, f_op, mode)
    carry = _lstm(params, carry, params['w_emb'][op])
    mask = jnp.arange(n) < i
    q = jnp.tanh(w1 + carry[1] @ params['w_attn_2']) @ params['v_attn']
    q = _shape(q, config.temperature, config.tanh_constant)
    pair = jnp.stack([-q, q], -1)                               # [n, 2]
    logp_pair = jax.nn.log_softmax(pair)
    skips = _choose(k_skip, pair, f_skips, mode)
    skips = jnp.where(mask, skips, 0)
    lp = jnp.take_along_axis(logp_pair, skips[:, None], -1)[:, 0]
    lp_skip = jnp.sum(jnp.where(mask, lp, 0.0))
    ent_skip = jnp.sum(jnp.where(mask, -lp * jnp.exp(lp), 0.0))
    p = (jax.nn.sigmoid(2 * q) if config.skip_penalty_form == 'sampled'
         else jax.nn.sigmoid(q))
    kl = jnp.sum(jnp.where(mask, _kl(p, config.skip_target), 0.0))
    count = jnp.sum(skips)
    mean_in = (skips.astype(jnp.float32) @ anchors) / (1.0 + count)
    x = jnp.where(i > 0, mean_in, g)
    anchors = anchors.at[i].set(carry[1])
    w1 = w1.at[i].set(carry[1] @ params['w_attn_1'])
    return (carry, x, anchors, w1), (op, skips, lp_op + lp_skip,
                                     ent_op + ent_skip, kl, count)

  init_carry = ((zero, zero), g, jnp.zeros((n, hsize)), jnp.zeros((n, hsize)))
  _, (ops, skips, lp, ent, kl, count) = jax.lax.scan(
      layer, init_carry, (jnp.arange(n), jax.random.split(key, n),
                          forced['ops'], forced['skips']))
  penalty = kl[1:].mean() if n > 1 else jnp.zeros(())
  arc = {'ops': ops.astype(jnp.int32), 'skips': skips.astype(jnp.int32)}
  return Sample(arc, lp.sum(), ent.sum(), penalty, count.sum())


def _recurrent(params, space, config, key, forced, mode) -> Sample:
  """The corrected reference's PTB sampler: for node i = 1..N, attention
  over nodes 0..i-1 (node 0's key is zero) minus the distance prior picks
  the input j, whose LSTM output divided by 0.1 + (i - j) is the next input;
  then the activation from h @ w_emb^T, whose embedding is the next input.
  Entropy: (-log p) p of each sampled token, as the reference."""
  n, hsize = space.num_nodes, config.lstm_size
  zero = jnp.zeros((hsize,))
  states = jnp.arange(n + 1)

  def node(scan_carry, inputs):
    carry, x, anchors, w1 = scan_carry
    i, key, tokens = inputs
    k_prev, k_op = jax.random.split(key)
    carry = _lstm(params, carry, x)
    anchors = anchors.at[i].set(carry[1])
    w1 = w1.at[i].set(carry[1] @ params['w_attn_1'])
    q = jnp.tanh(w1 + carry[1] @ params['w_attn_2']) @ params['v_attn']
    q = _shape(q, config.temperature, config.tanh_constant)
    q = q - jnp.square(i - states).astype(q.dtype) / DISTANCE_PRIOR
    prev, lp1, _, e1 = _decide(q, states < i, k_prev, tokens[0], mode)
    carry = _lstm(params, carry, anchors[prev] / (0.1 + (i - prev)))
    logits = _shape(params['w_emb'] @ carry[1], config.temperature,
                    config.tanh_constant)
    op, lp2, _, e2 = _decide(logits, jnp.ones(len(space.ops), bool), k_op,
                             tokens[1], mode)
    return ((carry, params['w_emb'][op], anchors, w1),
            (jnp.stack([prev, op]), lp1 + lp2, e1 + e2))

  buffers = jnp.zeros((n + 1, hsize))
  _, (arc, logp, ent) = jax.lax.scan(
      node, ((zero, zero), params['g_emb'], buffers, buffers),
      (jnp.arange(1, n + 1), jax.random.split(key, n), forced))
  z = jnp.zeros(())
  return Sample(arc.astype(jnp.int32), logp.sum(), ent.sum(), z, z)


def _sequence(params, space, config, key, forced, mode) -> Sample:
  """One op per edge (AutoDL's NB201 controller, one LSTM layer)."""
  zero = jnp.zeros((config.lstm_size,))

  def edge(scan_carry, inputs):
    carry, x = scan_carry
    key, token = inputs
    carry = _lstm(params, carry, x)
    logits = _shape(carry[1] @ params['w_soft'], config.temperature,
                    config.tanh_constant)
    op, lp, full, _ = _decide(logits, jnp.ones(space.num_ops, bool), key,
                              token, mode)
    return (carry, params['w_emb'][op]), (op, lp, full)

  _, (arc, logp, ent) = jax.lax.scan(
      edge, ((zero, zero), params['g_emb']),
      (jax.random.split(key, space.num_edges), forced))
  z = jnp.zeros(())
  return Sample(arc.astype(jnp.int32), logp.sum(), ent.sum(), z, z)


def _empty(space):
  if _kind(space) == 'sequence':
    return jnp.zeros((space.num_edges,), jnp.int32)
  if _kind(space) in ('micro', 'recurrent'):
    return jnp.zeros(space.arc_shape, jnp.int32)
  n = space.num_layers
  return {'ops': jnp.zeros((n,), jnp.int32),
          'skips': jnp.zeros((n, n), jnp.int32)}


_SAMPLERS = {'micro': _micro, 'macro': _macro, 'recurrent': _recurrent,
             'sequence': _sequence}


def _kind(space) -> str:
  kind = getattr(space, 'controller_kind', None)
  if kind not in _SAMPLERS:
    raise TypeError(f'Unknown space {type(space).__name__}: no controller '
                    'samples it.')
  return kind


def _run(params, space, config, key, forced, mode) -> Sample:
  return _SAMPLERS[_kind(space)](params, space, config, key, forced, mode)


def sample(params, key, *, space, config: ControllerConfig = MICRO) -> Sample:
  """Samples one arc; `jax.vmap` over keys for several."""
  return _run(params, space, config, key, _empty(space), 'sample')


def most_likely(params, *, space, config: ControllerConfig = MICRO
                ) -> Sample:
  """The greedy arc: every decision the most likely one given the decisions
  before it (as the controller's LSTM reads them)."""
  return _run(params, space, config, jax.random.key(0), _empty(space),
              'greedy')


def log_prob(params, arc, *, space, config: ControllerConfig = MICRO
             ) -> Sample:
  """Scores a given arc (teacher forcing); `.arc` echoes it."""
  return _run(params, space, config, jax.random.key(0), arc, 'teacher')
