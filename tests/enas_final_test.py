"""ENAS's final networks: parameter counts against the reference's wiring,
published arcs by name, arcs read and written like genotypes, config errors.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasjax import configs
from nasjax import data
from nasjax import errors
from nasjax import genotype as genotype_lib
from nasjax.data import pipeline
from nasjax.enas import final
from nasjax.final import network
from nasjax.final import train as train_lib
from nasjax.search_spaces import enas as enas_space
from tests import helpers


def _fr(c_in, c_out):
  """A factorised reduction: two 1x1 [c_in, c_out / 2] and a BN."""
  return c_in * c_out + 2 * c_out


def reference_micro_count(normal, reduce, f, num_layers, size=32,
                          num_classes=10, image_channels=3):
  """The trainable weights `micro_child.py` creates in fixed mode (aux head
  excluded), counted from its `create_weight` calls: stem, per cell
  `_maybe_calibrate_size`, `layer_base`, `_fixed_conv` stacks, identity's
  factorised reduction, `_fixed_combine`, the classifier."""
  n = 3 * 3 * image_channels * 3 * f + 2 * 3 * f
  prev = [(size, 3 * f), (size, 3 * f)]
  pools = (num_layers // 3, 2 * (num_layers // 3) + 1)
  for layer in range(num_layers + 2):
    stride = 2 if layer in pools else 1
    f = f * stride
    arc = reduce if stride == 2 else normal
    (hw0, c0), (hw1, c1) = prev
    if hw0 != hw1:
      n += _fr(c0, f)
    elif c0 != f:
      n += c0 * f + 2 * f
    if c1 != f:
      n += c1 * f + 2 * f
    n += f * f + 2 * f                        # layer_base
    used = [0] * (len(arc) // 4 + 2)
    for t in range(0, len(arc), 2):
      idx, op = arc[t], arc[t + 1]
      used[idx] += 1
      if op in (0, 1):
        n += 2 * ((3, 5)[op] ** 2 * f + f * f + 2 * f)
      elif op == 4 and idx < 2 and stride == 2:
        n += _fr(f, f)
    loose = [j for j, u in enumerate(used) if not u]
    n += sum(_fr(f, f) for j in loose if j < 2 and stride == 2)
    prev = [prev[1], (hw1 // stride, len(loose) * f)]
  return n + prev[1][1] * num_classes


def reference_macro_count(ops, skips, f, num_classes=10,
                          reference_ops=True):
  """The trainable weights `general_child.py` creates in fixed mode: stem,
  per layer conv_1x1 and the k x k conv (ops 1 and 3 as plain convs when
  `reference_ops`, else depthwise + pointwise; pools only the 1x1), the
  skip 1x1 over the concatenation, the factorised reductions, the
  classifier."""
  n, num = 27 * f + 2 * f, len(ops)
  pools = (num // 3 - 1, 2 * (num // 3) - 1)
  for i, op in enumerate(ops):
    n += f * f + 2 * f
    if op < 4:
      k = (3, 3, 5, 5)[op]
      sep = op in (1, 3) and not reference_ops
      n += (k * k * f + f * f if sep else k * k * f * f) + 2 * f
    if i > 0:
      n += (sum(skips[i][:i]) + 1) * f * f + 2 * f
    if i in pools:
      n += (i + 2) * _fr(f, 2 * f)
      f *= 2
  return n + f * num_classes


def _count(net, size=32):
  def init():
    return net.init({'params': jax.random.key(0),
                     'drop_path': jax.random.key(1),
                     'dropout': jax.random.key(2)},
                    jnp.zeros((2, size, size, 3)), train=True)
  return network.param_count_without_aux(jax.eval_shape(init)['params'])


def test_published_micro_arc_count_follows_the_reference_wiring():
  # 3,894,372 at 15 layers and 36 filters (the paper says 4.6M: see
  # docs/from_reference_code.md).
  arch = genotype_lib.load('ENAS_MICRO')
  want = reference_micro_count(*arch.arc.tolist(), 36, 15)
  assert want == 3_894_372
  assert _count(final.network(arch, channels=36, num_layers=15)) == want


@pytest.mark.parametrize('reference_ops', [False, True])
def test_published_macro_arc_count_follows_the_reference_wiring(
    reference_ops):
  arch = genotype_lib.load('ENAS_MACRO')
  ops, skips = arch.arc['ops'].tolist(), arch.arc['skips'].tolist()
  want = reference_macro_count(ops, skips, 96, reference_ops=reference_ops)
  assert want == (42_559_392 if reference_ops else 30_947_424)
  assert _count(final.network(arch, channels=96,
                              reference_ops=reference_ops)) == want


def test_random_arcs_count_follows_the_reference_wiring():
  """Arcs that use what the published ones do not: loose cell inputs in a
  reduction cell, identity reading a cell input at stride 2, pools in
  macro layers, skips from every state."""
  rng = np.random.default_rng(3)
  micro = enas_space.MicroSpace()
  arcs = [micro.random_arc(rng) for _ in range(3)]
  red = arcs[2][1]                       # reduction cell of the third arc:
  red[0::2][red[0::2] == 1] = 0          # input 1 loose,
  red[:4] = [0, 4, 0, 2]                 # identity and a pool at stride 2.
  assert {1} <= set(micro.loose_ends(red))
  for arc in arcs:
    got = _count(final.network(enas_space.EnasArc(micro, arc), channels=4,
                               num_layers=3, auxiliary=False), size=16)
    assert got == reference_micro_count(*arc.tolist(), 4, 3, size=16)
  macro = enas_space.MacroSpace(num_layers=6)
  arc = macro.random_arc(rng)
  arc['ops'][:] = [4, 5, 1, 3, 0, 2]
  got = _count(final.network(enas_space.EnasArc(macro, arc), channels=4),
               size=16)
  assert got == reference_macro_count(arc['ops'].tolist(),
                                      arc['skips'].tolist(), 4,
                                      reference_ops=False)


def test_arcs_read_and_write_like_genotypes(tmp_path):
  arch = genotype_lib.load('ENAS_MICRO')
  assert isinstance(arch, enas_space.EnasArc) and arch.kind == 'micro'
  assert str(arch) == enas_space.ENAS_MICRO
  genotype_lib.write_files(arch, str(tmp_path / 'arc'))
  again = genotype_lib.load(str(tmp_path / 'arc.json'))
  assert again == arch
  assert (tmp_path / 'arc_normal.svg').exists()
  macro = genotype_lib.load('ENAS_MACRO')
  assert genotype_lib.from_dict(genotype_lib.to_dict(macro)) == macro
  genotype_lib.write_files(macro, str(tmp_path / 'macro'))
  assert genotype_lib.load(str(tmp_path / 'macro.json')) == macro
  svg = (tmp_path / 'macro.svg').read_text()
  # One arc per skip (98 in the published arc), every layer with its op.
  assert svg.count('<path') == int(macro.arc['skips'].sum()) == 98
  assert 'layer 23' in svg and svg.count('sep_conv_5x5') == 5
  assert macro != arch
  with pytest.raises(genotype_lib.GenotypeError, match='Malformed ENAS arc'):
    genotype_lib.from_dict({'space': 'micro', 'arc': '0 1 2'})
  with pytest.raises(genotype_lib.GenotypeError, match='ENAS_MACRO'):
    genotype_lib.load('ENAS_NANO')


def test_the_network_family_must_match_the_architecture():
  cfg = configs.retrain('enas_tiny')
  with pytest.raises(errors.ConfigError, match='DARTS genotype'):
    train_lib.make_model(cfg, genotype_lib.load('DARTS_V2'), 10)
  cfg = configs.retrain('tiny')
  with pytest.raises(errors.ConfigError, match='ENAS arc'):
    train_lib.make_model(cfg, genotype_lib.load('ENAS_MICRO'), 10)
  cfg = configs.retrain('enas_macro')
  cfg.model.layers = 12
  with pytest.raises(errors.ConfigError, match='24 layers'):
    train_lib.make_model(cfg, genotype_lib.load('ENAS_MACRO'), 10)


def test_binary_retrains_an_arc_file_written_by_a_search(tmp_path):
  """darts_train.py with the enas_tiny preset on `arc.json` as the ENAS
  search writes it: trains 2 steps with the ENAS optimiser and ramps, and
  writes the arc and its results."""
  space = enas_space.MicroSpace()
  arc = space.random_arc(np.random.default_rng(0))
  enas_space.write_files(space, arc, str(tmp_path / 'arc'))
  out = helpers.run_binary('darts_train', 'enas_tiny',
                           f'--config.genotype={tmp_path / "arc.json"}',
                           f'--workdir={tmp_path / "run"}')
  assert out.returncode == 0, out.stderr[-3000:]
  run = tmp_path / 'run'
  results = json.loads((run / 'results.json').read_text())
  assert results['status'] == 'completed' and results['step'] == 2
  arch = enas_space.EnasArc(space, arc)
  assert genotype_lib.from_dict(results['genotype']) == arch
  assert genotype_lib.load(str(run / 'genotype.json')) == arch
  cfg = configs.retrain('enas_tiny')
  assert results['param_count'] == reference_micro_count(
      *arc.tolist(), cfg.model.channels, cfg.model.layers, size=8,
      image_channels=1)
  assert (cfg.optimizer.l2, cfg.optimizer.schedule) == (2e-4, 'sgdr')
  history = json.loads((run / 'history.json').read_text())
  # The ENAS ramp: min(1, (step + 1) / steps) * 0.4 over the planned
  # epochs' steps, averaged over steps 0 and 1.
  steps = cfg.epochs * pipeline.steps_per_epoch(
      data.get_dataset('digits').train, cfg.batch_size)
  want = 0.4 * (1 + 2) / 2 / steps
  np.testing.assert_allclose(history[0]['train']['drop_path_prob'], want,
                             rtol=1e-5)


def test_enas_presets_build_the_reference_optimiser_and_schedules():
  """enas_* presets: L2 in the loss (gradient 2 l2 w) with Nesterov, the
  warm-restart schedule, the step ramp of drop-path."""
  cfg = configs.retrain('enas_digits')
  ds = data.get_dataset('digits')
  _, tx, _, schedule, drop_path = train_lib.build(
      cfg, ds, genotype_lib.load('ENAS_MICRO'), steps_per_epoch=10)
  w = {'w': jnp.ones((3,))}
  updates, _ = tx.update({'w': jnp.zeros((3,))}, tx.init(w), w)
  # Zero loss gradient: only the L2 term, through Nesterov's first step
  # (g + mu g), times -lr.
  np.testing.assert_allclose(updates['w'], -0.05 * 1.9 * 2 * 2e-4, rtol=1e-6)
  t0 = cfg.optimizer.t0 * 10
  np.testing.assert_allclose([schedule(0), schedule(t0)], 0.05, rtol=1e-6)
  assert float(schedule(t0 - 1)) < 0.01
  total = cfg.epochs * 10
  np.testing.assert_allclose([float(drop_path(s)) for s in (0, total - 1)],
                             [0.4 / total, 0.4], rtol=1e-6)


def test_enas_search_vs_random_tiny_end_to_end(tmp_path):
  """One ENAS search against a uniformly random arc of the same space, both
  trained alike in ENAS's final network and tested."""
  from nasjax.configs import selection as selection_configs  # pylint: disable=g-import-not-at-top
  from nasjax.final import selection  # pylint: disable=g-import-not-at-top
  config = selection_configs.get_config('svr_enas_tiny')
  ds = data.get_dataset('digits')
  result = selection.run(config, str(tmp_path), ds, progress='none')
  assert [r['name'] for r in result.rows] == ['searched_0', 'random_0']
  searched, rand = (genotype_lib.from_dict(r['genotype'])
                    for r in result.rows)
  assert searched == genotype_lib.load(str(tmp_path / 'search_0' /
                                           'arc.json'))
  assert isinstance(rand, enas_space.EnasArc)
  assert rand.space == searched.space and rand != searched
  for r in result.rows:
    res = json.loads((tmp_path / f"candidate_{r['name']}" / 'results.json')
                     .read_text())
    assert res['step'] == config.candidate_train.max_steps
    assert res['test_accuracy'] == r['test_accuracy']
    assert res['test_examples'] == len(ds.test)
    assert res['param_count'] == r['param_count'] == reference_micro_count(
        *genotype_lib.from_dict(r['genotype']).arc.tolist(),
        config.candidate_train.model.channels,
        config.candidate_train.model.layers, size=8, image_channels=1)
    # Trained: 60 steps of 16 (960 examples, chance 0.1 +- 0.01: 0.13 is 3
    # standard errors above it).
    assert res['last_epoch_metrics']['accuracy'] > 0.13, res
  assert result.summary['search_ranks_among_random']['searched_0'] in (1, 2)
  assert 'random (1): mean' in result.table


# An independent NumPy forward pass of ENAS's micro final network in
# inference mode (float64; the reference's wiring as written in
# melodyguan/enas `micro_child.py` `_fixed_layer`, with symmetric padding).


def _np_conv(x, w, stride=1):
  """Dense k x k conv (HWIO), zero padding (k - 1) // 2 on every side."""
  k = w.shape[0]
  p = (k - 1) // 2
  xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  ho, wo = (x.shape[1] - 1) // stride + 1, (x.shape[2] - 1) // stride + 1
  out = np.zeros((x.shape[0], ho, wo, w.shape[-1]))
  for i in range(ho):
    for j in range(wo):
      patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k]
      out[:, i, j] = np.einsum('bhwc,hwcd->bd', patch, w)
  return out


def _np_depthwise(x, w, stride):
  return _np_conv(x, np.einsum('hwc,cd->hwcd', w, np.eye(x.shape[-1])),
                  stride)


def _np_pool(x, stride, kind):
  """3x3 pool, padding 1; the average counts only real pixels."""
  pad = -np.inf if kind == 'max' else 0.0
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=pad)
  ones = np.pad(np.ones(x.shape[1:3]), 1)
  ho, wo = (x.shape[1] - 1) // stride + 1, (x.shape[2] - 1) // stride + 1
  out = np.zeros((x.shape[0], ho, wo, x.shape[-1]))
  for i in range(ho):
    for j in range(wo):
      win = xp[:, i * stride:i * stride + 3, j * stride:j * stride + 3]
      if kind == 'max':
        out[:, i, j] = win.max((1, 2))
      else:
        n = ones[i * stride:i * stride + 3, j * stride:j * stride + 3].sum()
        out[:, i, j] = win.sum((1, 2)) / n
  return out


def _np_bn(x, p, s=None, eps=1e-5):
  """BN with running statistics `s`, or with the batch's (s None: the
  micro search child's)."""
  if s is None:
    s = {'mean': x.mean((0, 1, 2)), 'var': x.var((0, 1, 2))}
  return (x - s['mean']) / np.sqrt(s['var'] + eps) * p['scale'] + p['offset']


def _np_reduce(x, p, s=None, relu=False):
  x = np.maximum(x, 0) if relu else x
  even = x[:, ::2, ::2] @ p['w1']
  odd = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1::2, 1::2] @ p['w2']
  return _np_bn(np.concatenate([even, odd], -1), p['bn'],
                None if s is None else s['bn'])


def _np_conv1x1(x, p, s=None):
  return _np_bn(np.maximum(x, 0) @ p['w'], p['bn'],
                None if s is None else s['bn'])


def _np_sep(x, p, s, stride):
  for k in range(2):
    x = _np_depthwise(np.maximum(x, 0), p[f'dw{k}'], stride if k == 0 else 1)
    x = _np_bn(x @ p[f'pw{k}'], p[f'bn{k}'], s[f'bn{k}'])
  return x


def _np_micro_cell(tokens, f, stride, s0, s1, p, s):
  if s0.shape[1] != s1.shape[1]:
    s0 = _np_reduce(s0, p['calibrate_x'], s['calibrate_x'], relu=True)
  elif s0.shape[-1] != f:
    s0 = _np_conv1x1(s0, p['calibrate_x'], s['calibrate_x'])
  if s1.shape[-1] != f:
    s1 = _np_conv1x1(s1, p['calibrate_y'], s['calibrate_y'])
  s1 = _np_conv1x1(s1, p['base'], s['base'])
  states, used = [s0, s1], set()
  for i in range(len(tokens) // 4):
    out = 0.0
    for slot, (idx, op) in zip('xy', (tokens[4 * i:4 * i + 2],
                                      tokens[4 * i + 2:4 * i + 4])):
      st, name = stride if idx < 2 else 1, f'node{i}_{slot}'
      h = states[idx]
      if op in (0, 1):
        h = _np_sep(h, p[name], s[name], st)
      elif op in (2, 3):
        h = _np_pool(h, st, 'avg' if op == 2 else 'max')
      elif st > 1:
        h = _np_reduce(h, p[name], s[name], relu=False)
      out = out + h
      used.add(idx)
    states.append(out)
  loose = []
  for j, st in enumerate(states):
    if j not in used:
      if st.shape[1] != states[-1].shape[1]:
        st = _np_reduce(st, p[f'combine{j}'], s[f'combine{j}'], relu=False)
      loose.append(st)
  return np.concatenate(loose, -1)


def _np_micro_network(arc, f, num_layers, x, p, s):
  x = _np_bn(_np_conv(x, p['stem']), p['stem_bn'], s['stem_bn'])
  s0 = s1 = x
  d = num_layers // 3
  for layer in range(num_layers + 2):
    reduction = layer in (d, 2 * d + 1)
    f = 2 * f if reduction else f
    out = _np_micro_cell(arc[int(reduction)], f, 2 if reduction else 1, s0,
                         s1, p[f'cell{layer}'], s[f'cell{layer}'])
    s0, s1 = s1, out
  return np.maximum(s1, 0).mean((1, 2)) @ p['fc']


def _randomised(name, leaf, rng):
  """Random BN statistics, affine parameters and biases; weights as
  initialised (float64)."""
  if name == 'var':
    return rng.uniform(0.5, 2.0, leaf.shape)
  if name in ('mean', 'offset', 'bias'):
    return rng.normal(scale=0.3, size=leaf.shape)
  if name == 'scale':
    return rng.uniform(0.5, 1.5, leaf.shape)
  return np.asarray(leaf, np.float64)


def test_micro_final_network_equals_an_independent_numpy_forward_pass():
  """Every micro op in both cells (separable 3x3 and 5x5, average and max
  pools, identity; strided where a reduction cell reads its inputs, an
  identity there a factorised reduction, a loose cell input reduced to join
  the output), with random weights, BatchNorm affine parameters and running
  statistics: the network's inference logits equal the NumPy transcription
  above. Counts alone cannot tell one op from another."""
  # Per node: input, op, input, op. Ops: 0 sep3, 1 sep5, 2 avg, 3 max, 4 id.
  normal = (0, 0, 1, 2, 2, 3, 1, 4, 0, 1, 3, 0)
  reduce = (1, 1, 1, 3, 2, 4, 1, 2, 3, 0, 1, 4)
  space = enas_space.MicroSpace(num_nodes=3)
  net = final.network(enas_space.EnasArc(space, np.asarray([normal, reduce])),
                      channels=4, num_layers=3, auxiliary=False)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
  v = net.init({'params': jax.random.key(0)}, x, train=False)

  v = jax.tree_util.tree_map_with_path(
      lambda path, leaf: _randomised(str(path[-1].key), leaf, rng),
      jax.device_get(v))
  got = net.apply(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), v),
                  x, train=False)
  want = _np_micro_network((normal, reduce), 4, 3, x.astype(np.float64),
                           v['params'], v['batch_stats'])
  assert got.shape == (2, 10)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(
      want).max())


def _np_macro_network(ops, skips, f, x, p, s):
  """The macro final network (melodyguan/enas `general_child.py`
  `_fixed_layer`, separable ops separable and pools built) in NumPy."""
  states = [_np_bn(_np_conv(x, p['stem']), p['stem_bn'], s['stem_bn'])]
  d = len(ops) // 3
  for i, op in enumerate(ops):
    q, t = p[f'layer{i}'], s[f'layer{i}']
    h = _np_conv1x1(states[-1], q['inp'], t['inp'])
    if op in (4, 5):
      y = _np_pool(h, 1, 'avg' if op == 4 else 'max')
    else:
      h = np.maximum(h, 0)
      if op in (1, 3):
        h = _np_depthwise(h, q['dw'], 1) @ q['pw']
      else:
        h = _np_conv(h, q['w'])
      y = _np_bn(h, q['out_bn'], t['out_bn'])
    if i > 0:
      chosen = [states[j] for j in range(i) if skips[i][j]]
      y = _np_conv1x1(np.concatenate(chosen + [y], -1), p[f'skip{i}'],
                      s[f'skip{i}'])
    states.append(y)
    if i in (d - 1, 2 * d - 1):
      states = [_np_reduce(st, p[f'reduce{i}_from{j}'],
                           s[f'reduce{i}_from{j}'], relu=False)
                for j, st in enumerate(states)]
  return states[-1].mean((1, 2)) @ p['fc']


def test_macro_final_network_equals_an_independent_numpy_forward_pass():
  """Six layers using the six macro ops (3x3 and 5x5 convolutions and
  separable convolutions, average and max pools), skips from the stem and
  across both reductions, random weights, BN parameters and running
  statistics: inference logits equal the NumPy transcription."""
  ops = [0, 1, 4, 2, 5, 3]
  skips = np.zeros((6, 6), np.int32)
  skips[2, 0] = skips[3, 1] = skips[5, 0] = skips[5, 3] = 1
  space = enas_space.MacroSpace(num_layers=6)
  net = final.network(enas_space.EnasArc(space, {'ops': np.asarray(ops),
                                                 'skips': skips}),
                      channels=4)
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
  v = jax.device_get(net.init({'params': jax.random.key(0)}, x, train=False))
  v = jax.tree_util.tree_map_with_path(
      lambda path, leaf: _randomised(str(path[-1].key), leaf, rng), v)
  got = net.apply(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), v),
                  x, train=False)
  want = _np_macro_network(ops, skips, 4, x.astype(np.float64), v['params'],
                           v['batch_stats'])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(
      want).max())


def test_enas_micro_arcs_and_darts_genotypes_convert_both_ways():
  """`MicroSpace.from_genotype` inverts `to_genotype` (the arc in DARTS
  notation, identity as skip_connect) on random arcs, reads a hand-written
  genotype as the tokens written out here, and refuses ops ENAS does not
  have and a wrong node count. Catches: index and op tokens swapped, the
  identity / skip_connect names not mapped."""
  space = enas_space.MicroSpace(num_nodes=3)
  rng = np.random.default_rng(0)
  for _ in range(20):
    arc = space.random_arc(rng)
    np.testing.assert_array_equal(
        space.from_genotype(space.to_genotype(arc)), arc)
  g = genotype_lib.make(
      [('sep_conv_5x5', 1), ('skip_connect', 0), ('max_pool_3x3', 2),
       ('max_pool_3x3', 2), ('avg_pool_3x3', 0), ('sep_conv_3x3', 3)],
      [2, 3, 4],
      [('skip_connect', 1)] * 6, [2, 3, 4])
  np.testing.assert_array_equal(space.from_genotype(g), [
      [1, 1, 0, 4, 2, 3, 2, 3, 0, 2, 3, 0], [1, 4, 1, 4, 1, 4, 1, 4, 1, 4,
                                             1, 4]])
  with pytest.raises(ValueError, match="'dil_conv_3x3' is not one of"):
    space.from_genotype(genotype_lib.make(
        [('dil_conv_3x3', 0)] * 6, [2], [('skip_connect', 0)] * 6, [2]))
  with pytest.raises(ValueError, match='3 nodes has 6 pairs, got 8'):
    space.from_genotype(genotype_lib.load('DARTS_V2'))


def test_darts_on_the_enas_micro_space_retrains_in_enas_final_network():
  """The pair ('enas_micro', 'darts'): the DARTS search on ENAS's micro ops
  (2 nodes at the tiny size) derives a genotype of those ops, which
  `nasjax.retrain` with an ENAS preset trains as an ENAS micro arc (its
  parameter count that of the reference's micro child for that arc)."""
  import nasjax  # pylint: disable=g-import-not-at-top
  from nasjax.configs import darts_search  # pylint: disable=g-import-not-at-top
  found = nasjax.search('digits', 'tiny', space='enas_micro',
                        strategy='darts', progress='none')
  g = found.genotype
  assert len(g.normal) == len(g.reduce) == 4
  assert {op for op, _ in g.normal + g.reduce} <= set(
      darts_search.ENAS_MICRO_PRIMITIVES[1:])
  cfg = configs.retrain('enas_tiny')
  trained = nasjax.retrain('digits', g, cfg, progress='none')
  arc = enas_space.MicroSpace(num_nodes=2).from_genotype(g)
  assert trained.param_count == reference_micro_count(
      *arc.tolist(), cfg.model.channels, cfg.model.layers, size=8,
      image_channels=1)
