"""ENAS spaces and controllers against an independent NumPy transcription of
the reference TF samplers, and REINFORCE against its formulas."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nasjax.strategies import controller as C
from nasjax.strategies import reinforce as R
from nasjax.search_spaces.enas import MacroSpace, MicroSpace

# Small controllers: the functions are the same at any size.
MICRO_SPACE, MACRO_SPACE = MicroSpace(num_nodes=3), MacroSpace(num_layers=5)
MICRO_CFG = C.ControllerConfig(lstm_size=16)
MACRO_CFG = C.ControllerConfig(lstm_size=16, tanh_constant=1.5)


# ------------------------------------------------ an independent reference
# A line-by-line NumPy transcription of melodyguan/enas's TF samplers in
# float64 with the actions given: the LSTM of src/common_ops.py and the
# loops of micro_controller._build_sampler / general_controller._build_sampler.

def _sig(x):
  return 1 / (1 + np.exp(-x))


def _lstm(x, c, h, w):
  ifog = np.concatenate([x, h]) @ w
  i, f, o, g = np.split(ifog, 4)
  c = _sig(i) * np.tanh(g) + _sig(f) * c
  return c, _sig(o) * np.tanh(c)


def _logsoftmax(z):
  z = z - z.max()
  return z - np.log(np.exp(z).sum())


def _np(params):
  return jax.tree.map(lambda a: np.asarray(a, np.float64), params)


def reference_micro(params, arc, cfg, num_nodes):
  """(sum log p, sum of full entropies, per-decision log-softmax rows)."""
  p = _np(params)
  w, hs = p['lstm']['kernel'], cfg.lstm_size
  c, h = np.zeros(hs), np.zeros(hs)
  total_lp, total_ent, rows = 0.0, 0.0, []

  def shape(z, tanh_c):
    if cfg.temperature is not None:
      z = z / cfg.temperature
    return z if tanh_c is None else tanh_c * np.tanh(z)

  for cell, use_bias in ((0, True), (1, False)):
    anchors, anchors_w1 = [], []
    x = p['g_emb']
    for _ in range(2):
      c, h = _lstm(x, c, h, w)
      anchors.append(np.zeros(hs))
      anchors_w1.append(h @ p['w_attn_1'])
    for layer in range(2, num_nodes + 2):
      start = 4 * (layer - 2)
      for i in range(2):
        c, h = _lstm(x, c, h, w)
        q = np.tanh(np.stack(anchors_w1[:layer]) + h @ p['w_attn_2'])
        q = shape(q @ p['v_attn'], cfg.tanh_constant)
        ls = _logsoftmax(q)
        a = arc[cell][start + 2 * i]
        total_lp += ls[a]
        total_ent += -(np.exp(ls) * ls).sum()
        rows.append(ls)
        x = anchors[a]
      for i in range(2):
        c, h = _lstm(x, c, h, w)
        z = h @ p['w_soft'] + p['b_soft']
        z = shape(z, None if cfg.tanh_constant is None else
                  cfg.tanh_constant / cfg.op_tanh_reduce)
        if use_bias:
          z = z + np.array([0.25, 0.25, -0.25, -0.25, -0.25])
        ls = _logsoftmax(z)
        a = arc[cell][start + 2 * i + 1]
        total_lp += ls[a]
        total_ent += -(np.exp(ls) * ls).sum()
        rows.append(ls)
        x = p['w_emb'][a]
      c, h = _lstm(x, c, h, w)
      anchors.append(h)
      anchors_w1.append(h @ p['w_attn_1'])
      x = p['g_emb']
  return total_lp, total_ent, rows


def reference_macro(params, tokens, cfg, num_layers, form):
  """(sum log p, sum of sampled-token entropies, skip penalty)."""
  p = _np(params)
  w, hs = p['lstm']['kernel'], cfg.lstm_size
  c, h = np.zeros(hs), np.zeros(hs)
  x = p['g_emb']
  anchors, anchors_w1 = [], []
  total_lp, total_ent, kls, k = 0.0, 0.0, [], 0
  for layer in range(num_layers):
    c, h = _lstm(x, c, h, w)
    z = cfg.tanh_constant * np.tanh(h @ p['w_soft'])
    ls = _logsoftmax(z)
    op = tokens[k]
    k += 1
    total_lp += ls[op]
    total_ent += -ls[op] * np.exp(ls[op])
    x = p['w_emb'][op]
    c, h = _lstm(x, c, h, w)
    if layer > 0:
      q = np.tanh(np.stack(anchors_w1) + h @ p['w_attn_2']) @ p['v_attn']
      logit = cfg.tanh_constant * np.tanh(np.stack([-q, q], 1))
      skip = np.asarray(tokens[k:k + layer])
      k += layer
      prob = _sig(2 * logit[:, 1]) if form == 'sampled' else _sig(logit[:, 1])
      t = cfg.skip_target
      kls.append(np.sum(prob * np.log(prob / t) +
                        (1 - prob) * np.log((1 - prob) / (1 - t))))
      for j in range(layer):
        lsj = _logsoftmax(logit[j])
        total_lp += lsj[skip[j]]
        total_ent += -lsj[skip[j]] * np.exp(lsj[skip[j]])
      x = (skip @ np.stack(anchors)) / (1.0 + skip.sum())
    else:
      x = p['g_emb']
    anchors.append(h)
    anchors_w1.append(h @ p['w_attn_1'])
  return total_lp, total_ent, float(np.mean(kls))


# ------------------------------------------------------------------ spaces

def test_space_sizes_are_exact():
  assert MacroSpace().num_architectures() == 6 ** 12 * 2 ** 66
  assert f'{MacroSpace().num_architectures():.2e}' == '1.61e+29'
  micro = MicroSpace()
  per_cell = math.prod(((i + 2) * 5) ** 2 for i in range(5))
  assert micro.num_architectures() == per_cell ** 2
  unordered = math.prod(math.comb((i + 2) * 5 + 1, 2) for i in range(5))
  assert micro.num_architectures(distinct=True) == unordered ** 2
  # The paper's 1.3e11 is (5 x 5!)^4, which counts neither.
  assert (5 * math.factorial(5)) ** 4 == 129_600_000_000
  # Every space enumerates its decisions as Choices.
  assert len(micro.choices()) == 40 and len(MacroSpace().choices()) == 78
  assert math.prod(c.size for c in MacroSpace().choices()) == (
      MacroSpace().num_architectures())
  assert math.prod(c.size for c in micro.choices()) == (
      micro.num_architectures())


def test_arcs_round_trip_and_bad_arcs_are_refused():
  rng = np.random.default_rng(0)
  macro = MacroSpace()
  arc = macro.random_arc(rng)
  tokens = macro.to_tokens(arc)
  assert tokens.size == 78
  back = macro.from_tokens(tokens)
  np.testing.assert_array_equal(back['skips'], arc['skips'])
  with pytest.raises(ValueError, match='78 tokens'):
    macro.from_tokens(tokens[:-1])
  micro = MicroSpace()
  a = micro.random_arc(rng)
  np.testing.assert_array_equal(micro.check(a.reshape(-1)), a)
  bad = a.copy()
  bad[0, 0] = 2  # Node 0 can read only states 0 and 1.
  with pytest.raises(ValueError, match='input 2 is not one of the 2'):
    micro.check(bad)
  # The published ENAS micro normal cell reads only the cell inputs: all
  # five nodes are loose ends.
  normal = [0, 2, 0, 0, 0, 4, 0, 1, 0, 4, 1, 1, 1, 0, 0, 1, 0, 2, 1, 1]
  assert micro.loose_ends(normal) == [2, 3, 4, 5, 6]


# ------------------------------------------------------------ controllers

@functools.lru_cache(maxsize=None)
def _fns(kind, form='sampled'):
  space, cfg = ((MICRO_SPACE, MICRO_CFG) if kind == 'micro' else
                (MACRO_SPACE, C.ControllerConfig(
                    lstm_size=16, tanh_constant=1.5, skip_penalty_form=form)))
  sample = jax.jit(jax.vmap(functools.partial(C.sample, space=space,
                                              config=cfg), (None, 0)))
  score = jax.jit(jax.vmap(functools.partial(C.log_prob, space=space,
                                             config=cfg), (None, 0)))
  return space, cfg, sample, score


def _params(space, cfg, seed=0, scale=8.0):
  """Initial parameters scaled up: at uniform(-0.1, 0.1) with 16 units the
  LSTM state is so small that a wrong initial state moves log p by less
  than float32 tolerances; at +-0.8 every path shows."""
  params = C.init(jax.random.key(seed), space, cfg)
  return jax.tree.map(lambda a: a * scale, params)


def test_micro_log_prob_and_entropy_equal_the_reference_transcription():
  space, cfg, sample, score = _fns('micro')
  params = _params(space, cfg)
  s = sample(params, jax.random.split(jax.random.key(1), 4))
  scored = score(params, s.arc)
  for k in range(4):
    arc = np.asarray(s.arc[k])
    space.check(arc)
    lp, ent, _ = reference_micro(params, arc, cfg, space.num_nodes)
    np.testing.assert_allclose(scored.log_prob[k], lp, rtol=1e-5)
    np.testing.assert_allclose(s.log_prob[k], lp, rtol=1e-5)
    np.testing.assert_allclose(s.entropy[k], ent, rtol=1e-5)


@pytest.mark.parametrize('form', ['sampled', 'reference'])
def test_macro_log_prob_entropy_and_skip_penalty_equal_the_reference(form):
  space, cfg, sample, score = _fns('macro', form)
  params = _params(space, cfg)
  s = sample(params, jax.random.split(jax.random.key(2), 4))
  scored = score(params, s.arc)
  for k in range(4):
    arc = jax.tree.map(lambda a: np.asarray(a[k]), s.arc)
    space.check(arc)
    lp, ent, kl = reference_macro(params, space.to_tokens(arc), cfg,
                                  space.num_layers, form)
    np.testing.assert_allclose(scored.log_prob[k], lp, rtol=1e-5)
    np.testing.assert_allclose(s.entropy[k], ent, rtol=1e-5)
    np.testing.assert_allclose(s.skip_penalty[k], kl, rtol=1e-4)
    assert int(s.skips[k]) == int(arc['skips'].sum())


def reference_op_sequence(params, arc, cfg):
  """AutoDL-Projects' NB201 controller (`search_model_enas_utils.Controller`,
  one LSTM layer) in NumPy: (sum log p, sum of full entropies)."""
  p = _np(params)
  w, hs = p['lstm']['kernel'], cfg.lstm_size
  c, h, x = np.zeros(hs), np.zeros(hs), p['g_emb']
  total_lp, total_ent = 0.0, 0.0
  for op in arc:
    c, h = _lstm(x, c, h, w)
    z = cfg.tanh_constant * np.tanh(h @ p['w_soft'] / cfg.temperature)
    lp = _logsoftmax(z)
    total_lp += lp[op]
    total_ent -= np.sum(np.exp(lp) * lp)
    x = p['w_emb'][op]
  return total_lp, total_ent


def test_op_sequence_log_prob_and_entropy_equal_autodls_controller():
  """The controller over a one-shot space's edges (NB201: 6 x 5, AutoDL's
  temperature 5 and tanh 2.5): log p and entropy of sampled arcs against
  the NumPy transcription; the arc splits by cell type in sorted order."""
  seq = C.OpSequence.of({'reduce': (2, 5), 'normal': (6, 5)})
  assert seq.edges == (('normal', 6), ('reduce', 2)) and seq.num_edges == 8
  cfg = C.ControllerConfig(lstm_size=16, temperature=5.0, tanh_constant=2.5)
  params = _params(seq, cfg)
  assert 'b_soft' not in params
  sample = jax.jit(jax.vmap(functools.partial(C.sample, space=seq,
                                              config=cfg), (None, 0)))
  s = sample(params, jax.random.split(jax.random.key(3), 4))
  scored = jax.vmap(functools.partial(C.log_prob, space=seq, config=cfg),
                    (None, 0))(params, s.arc)
  for k in range(4):
    arc = np.asarray(s.arc[k])
    lp, ent = reference_op_sequence(params, arc, cfg)
    np.testing.assert_allclose(scored.log_prob[k], lp, rtol=1e-5)
    np.testing.assert_allclose(s.log_prob[k], lp, rtol=1e-5)
    np.testing.assert_allclose(s.entropy[k], ent, rtol=1e-5)
    split = seq.split(arc)
    np.testing.assert_array_equal(split['normal'], arc[:6])
    np.testing.assert_array_equal(split['reduce'], arc[6:])
  greedy = C.most_likely(params, space=seq, config=cfg).arc
  np.testing.assert_allclose(
      C.log_prob(params, greedy, space=seq, config=cfg).log_prob,
      reference_op_sequence(params, np.asarray(greedy), cfg)[0], rtol=1e-5)
  with pytest.raises(ValueError, match='same number of ops'):
    C.OpSequence.of({'a': (2, 5), 'b': (2, 4)})


def test_sampled_frequencies_match_the_probabilities():
  """20,000 seeded micro samples: the first decision (node 0's first input,
  2 options) and node 0's first op given its two inputs (5 options), each
  frequency within 4 standard errors of the reference's probability."""
  space, cfg, sample, _ = _fns('micro')
  params = _params(space, cfg, seed=3)
  n = 20_000
  arcs = np.asarray(sample(params, jax.random.split(jax.random.key(4), n)).arc)
  _, _, rows = reference_micro(params, arcs[0], cfg, space.num_nodes)
  p_first = np.exp(rows[0])
  freq = np.bincount(arcs[:, 0, 0], minlength=2) / n
  np.testing.assert_array_less(np.abs(freq - p_first),
                               4 * np.sqrt(p_first * (1 - p_first) / n))
  # op_1 of node 0 given (index_1, index_2) = the most frequent pair.
  pairs = arcs[:, 0, 0] * 2 + arcs[:, 0, 2]
  top = np.bincount(pairs).argmax()
  sel = arcs[pairs == top]
  _, _, rows = reference_micro(params, sel[0], cfg, space.num_nodes)
  p_op = np.exp(rows[2])  # Rows: index_1, index_2, op_1, op_2, ...
  freq = np.bincount(sel[:, 0, 1], minlength=5) / len(sel)
  np.testing.assert_array_less(np.abs(freq - p_op),
                               4 * np.sqrt(p_op * (1 - p_op) / len(sel)) + 1e-9)


def test_baseline_follows_its_formula():
  rewards = jnp.asarray([0.2, 0.5, 0.9, 0.1])
  final, per_child = R.baselines(jnp.asarray(0.3), rewards, 0.99)
  b, expected = 0.3, []
  for r in [0.2, 0.5, 0.9, 0.1]:
    b = b - 0.01 * (b - r)
    expected.append(b)
  np.testing.assert_allclose(per_child, expected, rtol=1e-6)
  np.testing.assert_allclose(final, expected[-1], rtol=1e-6)


def test_update_gradient_is_the_reinforce_estimator():
  """The update's gradient equals -mean(advantage * grad log p) with the
  advantage against the baseline updated first, reward with entropy."""
  space, cfg, sample, _ = _fns('micro')
  params = _params(space, cfg)
  arcs = sample(params, jax.random.split(jax.random.key(5), 3)).arc
  acc = jnp.asarray([0.1, 0.6, 0.3])
  score = functools.partial(C.log_prob, space=space, config=cfg)
  tx = optax.sgd(1.0)
  state = R.create(params, tx)
  state = state.replace(baseline=jnp.asarray(0.25))
  new, metrics = R.update(state, arcs, acc, score=score, tx=tx,
                          entropy_weight=0.01, decay=0.9)
  s = jax.vmap(score, (None, 0))(params, arcs)
  rewards = np.asarray(acc) + 0.01 * np.asarray(s.entropy)
  b, adv = 0.25, []
  for r in rewards:
    b = b - 0.1 * (b - r)
    adv.append(r - b)
  grad = jax.jit(jax.grad(lambda p, a: score(p, a).log_prob))
  grads = [grad(params, a) for a in arcs]
  expected = jax.tree.map(
      lambda *g: -sum(a * x for a, x in zip(adv, g)) / len(adv), *grads)
  got = jax.tree.map(lambda new_p, p: p - new_p, new.params, params)  # SGD lr 1.
  for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
    np.testing.assert_allclose(g, e, rtol=2e-4, atol=1e-6)
  np.testing.assert_allclose(new.baseline, b, rtol=1e-6)
  np.testing.assert_allclose(metrics['advantage'], np.mean(adv), rtol=1e-5)


def test_controller_learns_a_rewarded_op():
  """A synthetic reward of 1 when the reduction cell's node 0 uses op
  sep_conv_3x3 (id 0) for its first input, else 0: from about 0.5 (the op
  bias starts at 10 for both separable convolutions) its probability
  exceeds 0.9 within 60 updates of 10 children (Adam lr 0.05). Without the
  tanh cap (tanh_constant=None): with the reference's cap (1.1 / 2.5) no op
  can pass about 0.38 in the reduction cell."""
  space = MICRO_SPACE
  cfg = C.ControllerConfig(lstm_size=16, tanh_constant=None)
  params = C.init(jax.random.key(0), space, cfg)
  sample = jax.vmap(functools.partial(C.sample, space=space, config=cfg),
                    (None, 0))
  score = functools.partial(C.log_prob, space=space, config=cfg)
  tx = R.adam(0.05)

  @jax.jit
  def step(state, key):
    arcs = sample(state.params, jax.random.split(key, 10)).arc
    acc = (arcs[:, 1, 1] == 0).astype(jnp.float32)
    return R.update(state, arcs, acc, score=score, tx=tx, entropy_weight=0.0)

  def p_op(params):
    arcs = sample(params, jax.random.split(jax.random.key(99), 4000)).arc
    return float(jnp.mean(arcs[:, 1, 1] == 0))

  state = R.create(params, tx)
  start = p_op(state.params)
  for key in jax.random.split(jax.random.key(7), 60):
    state, _ = step(state, key)
  assert start < 0.6 and p_op(state.params) > 0.9, (start,
                                                     p_op(state.params))


def test_published_arcs_decode_as_the_reference_describes():
  from nasjax.search_spaces import enas  # pylint: disable=g-import-not-at-top
  space, arc = enas.published('ENAS_MACRO')
  assert space.num_layers == 24 and space.num_tokens == 300
  assert enas.to_string(arc['ops']) == (
      '0 3 0 2 2 3 2 2 1 0 2 0 2 1 0 2 2 2 3 3 0 3 0 0')
  assert int(arc['skips'].sum()) == 98  # Of 276 possible.
  assert enas.to_string(space.to_tokens(arc)) == enas.ENAS_MACRO
  space, arc = enas.published('ENAS_MICRO')
  assert space.loose_ends(arc[0]) == [2, 3, 4, 5, 6]
  assert space.loose_ends(arc[1]) == [2, 4, 5, 6]
  # Reduction node 4 (state 4) = sep5(1) + sep5(3).
  np.testing.assert_array_equal(arc[1, 8:12], [1, 1, 3, 1])
  with pytest.raises(ValueError, match='Unknown ENAS arc'):
    enas.published('ENAS_NANO')
