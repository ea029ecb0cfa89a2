"""The DARTS recurrent cell, its language model, the PTB reader, and the
recurrent search through the shared bilevel step (exact hypergradient)."""

import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nasjax import parallel
from nasjax.darts import rnn
from nasjax import bilevel as step_lib
from nasjax.data import pipeline
from nasjax.data import ptb
from nasjax.genotype import recurrent as recurrent_lib
from nasjax.search_spaces import darts_rnn
from nasjax.train_state import SearchState
from tests import conftest

# A tiny recurrent problem: 3 nodes, 6 units, 20 words, 3 rows, 4 tokens.
SPACE = darts_rnn.DartsRnnSpace(steps=3)
VOCAB, UNITS, ROWS, BPTT = 20, 6, 3, 4


def _rel(a, b):
  a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(a)])
  b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(b)])
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_search_model_has_the_papers_4_810_000_weights():
  """10,000 words, 300 units, alpha excluded (darts.md 6): one W_i per node
  shared by its incoming edges, affine-free BatchNorm, a tied decoder."""
  space = darts_rnn.DartsRnnSpace()
  assert space.num_edges == 36 and space.alpha_shapes() == {
      'recurrent': (36, 5)}
  model = rnn.RNNModel(10_000, 300)
  alpha = rnn.init_alpha(space, jax.random.key(0))
  v = jax.eval_shape(lambda: model.init(
      jax.random.key(1), jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 300)),
      alpha))
  assert sum(x.size for x in jax.tree.leaves(v['params'])) == 4_810_000
  # Running statistics per node (not weights; docs/from_reference_code.md).
  assert jax.tree.map(lambda x: x.shape, v['batch_stats']) == {
      'cell': {'mean': (9, 300), 'var': (9, 300)}}


# An independent NumPy transcription of the reference's cells
# (rnn/model_search.py DARTSCellSearch.cell, rnn/model.py DARTSCell.cell),
# loop for loop, without dropout.
_ACTS = {'tanh': np.tanh, 'relu': lambda x: np.maximum(x, 0),
         'sigmoid': lambda x: 1 / (1 + np.exp(-x)), 'identity': lambda x: x}


def _np_bn(x, stats, node, train):
  """BatchNorm1d(affine=False), with running statistics per node (the
  reference pools them in one module; the batch-statistics computation of
  training mode is the same)."""
  mean, var = (a.copy() for a in stats)
  if train:
    m, v = x.mean(0), x.var(0)
    n = x.shape[0]
    mean[node] = 0.9 * mean[node] + 0.1 * m
    var[node] = 0.9 * var[node] + 0.1 * v * n / (n - 1)
    return (x - m) / np.sqrt(v + 1e-5), (mean, var)
  return (x - mean[node]) / np.sqrt(var[node] + 1e-5), (mean, var)


def _np_cell(x, h, w0, ws, probs, genotype, stats, train, primitives):
  nh = h.shape[1]
  sig = _ACTS['sigmoid']
  ch0 = np.concatenate([x, h], 1) @ w0
  s0 = h + sig(ch0[:, :nh]) * (np.tanh(ch0[:, nh:]) - h)
  if genotype is not None:
    states = [s0]
    for i, (name, pred) in enumerate(genotype.recurrent):
      ch = states[pred] @ ws[i]
      states.append(states[pred] + sig(ch[:, :nh]) *
                    (_ACTS[name](ch[:, nh:]) - states[pred]))
    return np.mean([states[c] for c in genotype.concat], 0), stats
  s0, stats = _np_bn(s0, stats, 0, train)
  states, offset = [s0], 0
  for i in range(len(ws)):
    s = np.zeros_like(s0)
    for j in range(i + 1):
      ch = states[j] @ ws[i]
      c, g = sig(ch[:, :nh]), ch[:, nh:]
      for k, name in enumerate(primitives):
        if name != 'none':
          s += probs[offset + j, k] * (states[j] + c * (_ACTS[name](g) -
                                                        states[j]))
    s, stats = _np_bn(s, stats, i + 1, train)
    states.append(s)
    offset += i + 1
  return np.mean(states[1:], 0), stats


def _np_sequence(x, h, params, alpha, genotype, stats, train, primitives):
  w0, ws = (np.asarray(params['cell'][k], np.float64) for k in ('w0', 'ws'))
  probs = None
  if alpha is not None:
    a = np.asarray(alpha['recurrent'], np.float64)
    probs = np.exp(a) / np.exp(a).sum(-1, keepdims=True)
  outs = []
  for t in range(x.shape[1]):
    h, stats = _np_cell(x[:, t], h, w0, ws, probs, genotype, stats, train,
                        primitives)
    outs.append(h)
  return np.stack(outs, 1), h, stats


@pytest.mark.parametrize('train', [False, True])
def test_search_cell_equals_the_reference_cell(train):
  """Whole-model forward against the NumPy transcription, float64: training
  mode (batch statistics; every BatchNorm use updates the running statistics)
  and evaluation (running statistics, set away from 0 and 1). Dropout 0, so
  the masks are 1."""
  with jax.enable_x64(True):
    model = rnn.RNNModel(VOCAB, UNITS, space=SPACE, dropout=0., dropout_h=0.,
                         dropout_x=0., dropout_i=0.)
    alpha = {'recurrent': jax.random.normal(jax.random.key(0),
                                            (SPACE.num_edges, 5), jnp.float64)}
    tokens = np.random.default_rng(0).integers(0, VOCAB, (ROWS, 5))
    h0 = np.random.default_rng(1).normal(size=(ROWS, UNITS))
    v = model.init(jax.random.key(1), tokens, jnp.asarray(h0), alpha)
    params = jax.tree.map(lambda p: p.astype(jnp.float64) * 10, v['params'])
    n = (SPACE.steps + 1) * UNITS
    stats = {'cell': {
        'mean': jnp.linspace(-0.5, 0.5, n).reshape(SPACE.steps + 1, UNITS),
        'var': jnp.linspace(0.5, 2.0, n).reshape(SPACE.steps + 1, UNITS)}}
    (logits, last, raw), upd = model.apply(
        {'params': params, 'batch_stats': stats}, tokens, jnp.asarray(h0),
        alpha, train=train, rngs={'dropout': jax.random.key(2)},
        mutable=['batch_stats'])
    x = np.asarray(params['embedding'])[tokens]
    want, want_last, want_stats = _np_sequence(
        x, h0, params, alpha, None,
        (np.asarray(stats['cell']['mean']), np.asarray(stats['cell']['var'])),
        train, SPACE.primitives)
  np.testing.assert_allclose(raw, want, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(last, want_last, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(
      logits, want @ np.asarray(params['embedding']).T +
      np.asarray(params['decoder_bias']), rtol=1e-10, atol=1e-12)
  if train:
    np.testing.assert_allclose(upd['batch_stats']['cell']['mean'],
                               want_stats[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(upd['batch_stats']['cell']['var'],
                               want_stats[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('name', ['DARTS_V2_RNN', 'ENAS_RNN'])
def test_discrete_cell_equals_the_reference_cell(name):
  g = recurrent_lib.RECURRENT_ZOO[name]
  with jax.enable_x64(True):
    model = rnn.RNNModel(VOCAB, UNITS, genotype=g)
    tokens = np.random.default_rng(0).integers(0, VOCAB, (ROWS, 4))
    h0 = np.random.default_rng(1).normal(size=(ROWS, UNITS))
    v = model.init(jax.random.key(1), tokens, jnp.asarray(h0))
    params = jax.tree.map(lambda p: p.astype(jnp.float64) * 10, v['params'])
    _, last, raw = model.apply({'params': params}, tokens, jnp.asarray(h0))
    want, want_last, _ = _np_sequence(
        np.asarray(params['embedding'])[tokens], h0, params, None, g, (),
        False, None)
  assert 'batch_stats' not in v
  assert params['cell']['ws'].shape[0] == g.steps
  np.testing.assert_allclose(raw, want, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(last, want_last, rtol=1e-10, atol=1e-12)


def test_genotype_keeps_the_strongest_non_none_predecessor_then_its_op():
  space = darts_rnn.DartsRnnSpace(steps=3)
  a = np.zeros((6, 5))
  # Node 1 (row 0): only s0; 'none' is the largest but never chosen.
  a[0] = [9, 0, 2, 1, 0]                      # -> relu(s0)
  # Node 2 (rows 1-2): s0's strongest non-none (identity 3) beats s1's
  # (sigmoid 2.5) although s1's 'none' is the largest entry of all.
  a[1] = [0, 0, 0, 0, 3]
  a[2] = [20, 0, 0, 2.5, 0]
  # Node 3 (rows 3-5): s2 by tanh.
  a[3:6] = 0
  a[5] = [0, 4, 0, 0, 0]
  g = recurrent_lib.from_alpha(a, space)
  assert g == recurrent_lib.from_notation(
      's1=relu(s0); s2=identity(s0); s3=tanh(s2); concat=[1..3]')
  # Where softmax and raw logits disagree: node 2's s0 row has the largest
  # raw non-none logit (tanh 6) but its 'none' (10) leaves tanh a softmax
  # weight of 0.018; s1's relu (2) has 0.65: s1 by relu.
  a[1] = [10, 6, 0, 0, 0]
  a[2] = [0, 0, 2, 0, 0]
  g = recurrent_lib.from_alpha(a, space)
  assert g.recurrent[1] == ('relu', 1), g
  assert recurrent_lib.from_notation(str(g)) == g
  with pytest.raises(recurrent_lib.GenotypeError, match='shape'):
    recurrent_lib.from_alpha(np.zeros((5, 5)), space)
  with pytest.raises(recurrent_lib.GenotypeError, match='cannot read'):
    recurrent_lib.make([['tanh', 1]], [1])


def test_published_recurrent_genotypes_parse():
  assert recurrent_lib.DARTS_V2_RNN.recurrent[0] == ('sigmoid', 0)
  assert recurrent_lib.ENAS_RNN.steps == 11
  assert recurrent_lib.ENAS_RNN.concat == (2, 5, 6, 9, 10, 11)
  for g in recurrent_lib.RECURRENT_ZOO.values():
    assert recurrent_lib.from_dict(g.to_dict()) == g


# --- The recurrent search through the shared bilevel step -----------------

def _tx(clip):
  return optax.chain(optax.clip_by_global_norm(clip),
                     optax.add_decayed_weights(5e-7), optax.sgd(1.0))


MODEL = rnn.RNNModel(VOCAB, UNITS, space=SPACE, dropout=0.3, dropout_h=0.2,
                     dropout_x=0.3, dropout_i=0.1)
FAMILY = rnn.LanguageModel(MODEL, bptt=BPTT)


def _state(dtype=jnp.float32, clip=0.25, seed=0, rows=ROWS):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  alpha = jax.tree.map(lambda a: (500 * a).astype(dtype),
                       rnn.init_alpha(SPACE, k2))
  v = MODEL.init(k1, jnp.zeros((2, BPTT), jnp.int32),
                 jnp.zeros((2, UNITS)), alpha)
  cast = lambda t: jax.tree.map(lambda a: a.astype(dtype), t)
  carry = {'train': 0.3 * jax.random.normal(k3, (rows, UNITS), dtype),
           'val': -0.2 * jax.random.normal(k3, (rows, UNITS), dtype)}
  return SearchState.create(
      params=cast(v['params']), batch_stats=cast(v['batch_stats']),
      alpha=alpha, tx=_tx(clip), arch_tx=optax.adam(3e-3), rng=k3,
      carry=carry)


def _batch(seed, length=BPTT, rows=ROWS):
  t = np.random.default_rng(seed).integers(0, VOCAB, (rows, length + 1))
  return {'inputs': t[:, :-1].astype(np.int32),
          'targets': t[:, 1:].astype(np.int32)}


@functools.cache
def _grad_fn():
  return jax.jit(functools.partial(step_lib.arch_gradient, model=FAMILY,
                                   learning_rate=lambda s: 1.0),
                 static_argnames=('arch_mode',))


def test_exact_recurrent_hypergradient_equals_central_differences():
  """Float64; w' is the real `weight_step` (the clip at 0.25 active, the
  window's seq_len / bptt scale, weight decay, TAR, dropout masks from the
  step's key), differentiated through the same `arch_gradient` the CNN
  uses. The incoming hidden state is a constant of the step."""
  with jax.enable_x64(True):
    state = _state(jnp.float64)
    tb, vb = _batch(1, BPTT // 2), _batch(2)   # a short training window
    grad = _grad_fn()
    exact = grad(state, tb, vb, arch_mode='second_order')[0]
    g_train = jax.grad(FAMILY.loss, has_aux=True)(
        state.params, state.batch_stats, state.alpha,
        FAMILY.prepare(state.rng, state.step, 0, tb, state.carry['train']))[0]
    assert optax.global_norm(g_train) > 4 * 0.25  # The clip is active.

    val_in = FAMILY.prepare(state.rng, state.step, 1, vb, state.carry['val'])
    step = functools.partial(step_lib.weight_step, model=FAMILY)

    def unrolled(alpha):
      stepped, _ = step(state.replace(alpha=alpha), tb)
      return FAMILY.loss(stepped.params, state.batch_stats, alpha, val_in)[0]

    a = state.alpha['recurrent']
    # The hypergradient is small here (norm 2.5e-4): at eps = 1e-6 rounding
    # in the loss gives a 6e-6 relative error; at 1e-4 both it and the
    # truncation error are below 1e-7.
    eps = 1e-4
    deltas = np.zeros((2 * a.size,) + a.shape)
    for n, idx in enumerate(np.ndindex(a.shape)):
      deltas[2 * n][idx], deltas[2 * n + 1][idx] = eps, -eps
    losses = np.asarray(jax.jit(jax.vmap(
        lambda d: unrolled({'recurrent': a + d})))(deltas))
    fd = ((losses[0::2] - losses[1::2]) / (2 * eps)).reshape(a.shape)
    err = _rel(exact['recurrent'], fd)
    first = grad(state, tb, vb, arch_mode='first_order')[0]
    print(f'recurrent: exact vs central differences {err:.2e}, first order '
          f'vs exact {_rel(first, exact):.2e}')
  assert err < 1e-6
  assert _rel(first, exact) > 1e-3


def test_search_step_carries_each_streams_hidden_state():
  """After a step, carry['val'] is the last hidden state of the validation
  pass (weights w, first order: before the step) and carry['train'] that of
  the training pass (weights w, alpha after its update); the next window
  starts from them."""
  state = _state()
  tb, vb = _batch(1), _batch(2)
  new, metrics = jax.jit(functools.partial(
      step_lib.search_step, model=FAMILY, arch_mode='first_order'))(
          state, tb, vb)
  assert bool(metrics['finite'])

  def last_hidden(alpha, salt, batch, carry):
    inputs = FAMILY.prepare(state.rng, state.step, salt, batch, carry)
    return FAMILY.loss(state.params, state.batch_stats, alpha,
                       inputs)[1][1]['carry']

  np.testing.assert_allclose(
      new.carry['val'], last_hidden(state.alpha, 1, vb, state.carry['val']),
      rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      new.carry['train'], last_hidden(new.alpha, 0, tb, state.carry['train']),
      rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(new.carry['train'] - state.carry['train']).max()) > 0


def test_two_window_lengths_compile_two_programs_and_scale_the_update():
  """The search's two window lengths (bptt and bptt // 2) trace the step
  twice, then never again; the short window's update is seq_len / bptt of
  the full-length update of the same gradients (the reference's lr
  rescaling)."""
  traces = []

  def fn(state, tb, vb):
    traces.append(tb['inputs'].shape)
    return step_lib.search_step(state, tb, vb, model=FAMILY,
                                arch_mode='first_order')

  step = jax.jit(fn)
  state = _state(clip=1e6)  # No clip, so the update is linear in the lr.
  for seed, length in [(1, BPTT), (2, BPTT // 2), (3, BPTT), (4, BPTT // 2)]:
    state, _ = step(state, _batch(seed, length), _batch(9))
  assert traces == [(ROWS, BPTT), (ROWS, BPTT // 2)]

  state = _state(clip=1e6)
  short = _batch(5, BPTT // 2)
  grads = jax.grad(FAMILY.loss, has_aux=True)(
      state.params, state.batch_stats, state.alpha,
      FAMILY.prepare(state.rng, state.step, 0, short, state.carry['train']))[0]
  new, _ = jax.jit(functools.partial(step_lib.weight_step, model=FAMILY))(
      state, short)
  full, _ = state.tx.update(grads, state.opt_state, state.params)
  moved = jax.tree.map(jnp.subtract, new.params, state.params)
  chex.assert_trees_all_close(
      moved, jax.tree.map(lambda u: u * (BPTT // 2) / BPTT, full),
      rtol=1e-3, atol=1e-8)  # float32 cancellation in new - old.


@pytest.mark.parametrize('staged', [False, True])
def test_eight_devices_equal_one(staged):
  """The exact second-order recurrent step on 8 devices (rows sharded; one
  program with the hidden states sharded by rows as the loop runs it, or
  staged as for the CNN with everything but the batch replicated) equals
  the 1-device step: weights, alpha, BatchNorm statistics and both streams'
  hidden states."""
  kw = dict(model=FAMILY, arch_mode='second_order')
  tb, vb = _batch(1, rows=8), _batch(2, rows=8)
  results = []
  for n in (1, 8):
    mesh = parallel.make_mesh(n)
    state = parallel.replicate(_state(rows=8), mesh)
    if staged and n == 8:
      step = step_lib.staged_search_step(parallel.stage_jitter(mesh), **kw)
    else:
      state = parallel.place(state, mesh)
      step = parallel.jit_step(functools.partial(step_lib.search_step, **kw),
                               mesh, num_batches=2, state=state)
    new, metrics = step(state, parallel.shard_batch(tb, mesh),
                        parallel.shard_batch(vb, mesh))
    assert bool(metrics['finite'])
    if not staged and n == 8:  # The carry stays with its rows.
      for h in new.carry.values():
        assert h.sharding.spec == parallel.batch_sharding(mesh).spec
    items = dict(new.checkpoint_items(), rng=jax.random.key_data(new.rng))
    assert 'carry' in items
    results.append(jax.device_get((items, metrics)))
  chex.assert_trees_all_close(results[0], results[1], rtol=2e-4, atol=2e-6)


# --- PTB reader ------------------------------------------------------------

def _ptb_dir(tmp_path):
  """The real valid and test files (there is no train file in the test
  data): valid serves as train and valid, test as test."""
  src = conftest.require_data(os.path.join(conftest.TEST_DATA, 'ptb'))
  for split, name in [('train', 'valid'), ('valid', 'valid'), ('test', 'test')]:
    with open(os.path.join(src, f'ptb.{name}.txt')) as f:
      (tmp_path / f'ptb.{split}.txt').write_text(f.read())
  return str(tmp_path)


def test_ptb_reader_on_the_real_files(tmp_path):
  corpus = ptb.load(_ptb_dir(tmp_path))
  # 70,390 words and 3,370 lines, each line ending with <eos>.
  assert len(corpus.valid) == 70_390 + 3_370
  assert len(corpus.test) == 78_669 + 3_761
  assert corpus.vocab[corpus.valid[20]] != ptb.EOS
  assert np.sum(corpus.valid == corpus.vocab.index(ptb.EOS)) == 3_370
  assert corpus.vocab_size <= 10_000 and corpus.vocab_size > 5_000
  assert np.array_equal(corpus.train, corpus.valid)
  with open(os.path.join(str(tmp_path), 'ptb.valid.txt')) as f:
    first = f.readline().split()
  assert [corpus.vocab[i] for i in corpus.valid[:len(first) + 1]] == (
      first + [ptb.EOS])
  data = ptb.batchify(corpus.valid, 256)
  n = len(corpus.valid) // 256
  assert data.shape == (256, n)
  np.testing.assert_array_equal(data[1], corpus.valid[n:2 * n])
  x, y = ptb.window(data, 10, 35)
  np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
  np.testing.assert_array_equal(y, data[:, 11:46])
  hosts = [ptb.host_rows(data, i, 4) for i in range(4)]
  np.testing.assert_array_equal(np.concatenate(hosts), data)


def test_search_windows_use_two_lengths_and_fit():
  windows = ptb.search_windows(288, 35, seed=3, epoch=0)
  assert len(windows) == 287 // 35
  lengths = [n for _, n in windows]
  assert set(lengths) <= {35, 17}
  assert windows[0][0] == 0 and all(
      p + n == q for (p, n), (q, _) in zip(windows, windows[1:]))
  assert windows[-1][0] + windows[-1][1] + 1 <= 288
  many = [n for e in range(200) for _, n in ptb.search_windows(
      1001, 10, seed=0, epoch=e)]
  assert 0.03 < many.count(5) / len(many) < 0.07   # probability 0.05
  assert ptb.search_windows(1001, 10, 0, 5) == ptb.search_windows(
      1001, 10, 0, 5)


def test_ptb_errors_name_the_path(tmp_path):
  with pytest.raises(pipeline.DataError, match='does not exist'):
    ptb.load(str(tmp_path / 'nowhere'))
  (tmp_path / 'ptb.train.txt').write_text('a b\n')
  (tmp_path / 'ptb.valid.txt').write_text('a\n')
  with pytest.raises(pipeline.DataError, match='ptb.test.txt'):
    ptb.load(str(tmp_path))
  (tmp_path / 'ptb.test.txt').write_text('\n\n')
  with pytest.raises(pipeline.DataError, match='holds no words'):
    ptb.load(str(tmp_path))
  (tmp_path / 'ptb.test.txt').write_bytes(b'\xff\xfe a')
  with pytest.raises(pipeline.DataError, match='not UTF-8'):
    ptb.load(str(tmp_path))
  (tmp_path / 'ptb.test.txt').write_text('b a\n')
  corpus = ptb.load(str(tmp_path))
  assert corpus.vocab == ('a', 'b', ptb.EOS)
  with pytest.raises(pipeline.DataError, match='rows'):
    ptb.batchify(corpus.train, 3)
