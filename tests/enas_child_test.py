"""ENAS shared-weight children: equal to the fixed network of their arc and
to independent NumPy transcriptions of the search wiring, one compiled
function for every arc; the child optimiser and schedules."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nasjax.enas import child as child_lib
from nasjax.enas import step as step_lib
from nasjax.search_spaces.enas import MacroSpace, MicroSpace
from tests import enas_final_test as ref

MICRO = MicroSpace(num_nodes=2)
MACRO = MacroSpace(num_layers=3)
X = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 1)),
                jnp.float32)
KW = {MICRO: dict(channels=4, num_layers=1, aux_head=False, keep_prob=1.0),
      MACRO: dict(channels=4, keep_prob=1.0)}


@functools.cache
def _shared(space):
  net = child_lib.child(space, **KW[space])
  arc = (space.random_arc(np.random.default_rng(0)))
  variables = jax.jit(lambda: net.init({'params': jax.random.key(1)}, X, arc,
                                       train=True))()
  return net, variables


@functools.cache
def _forward(space):
  """The shared child's jitted forward pass (train mode), traced once."""
  net, _ = _shared(space)

  def forward(variables, arc):
    (logits, _), updates = net.apply(variables, X, arc, train=True,
                                     mutable=['batch_stats'])
    return logits, updates.get('batch_stats', {})

  # chex counts traces by name and source: one name per space.
  forward.__name__ = f'forward_{type(space).__name__}'
  return jax.jit(chex.assert_max_traces(forward, n=1))


def _arcs(space, n, seed=1):
  rng = np.random.default_rng(seed)
  return [space.random_arc(rng) for _ in range(n)]


def _micro_arc_with_loose_input():
  """Normal cell: node 0 = (1, 1), node 1 = (2, 1): input 0 and nothing
  else is never read, so the cell concatenates states 0 and 3."""
  a = np.asarray(_arcs(MICRO, 1, seed=5)[0])
  a[0] = [1, 0, 1, 2, 2, 1, 1, 4]
  assert MICRO.loose_ends(a[0]) == [0, 3]
  return a


@pytest.mark.parametrize('space', [MICRO, MACRO], ids=['micro', 'macro'])
def test_shared_child_equals_the_fixed_network_of_its_arc(space):
  """The weights of one arc sliced out of the shared child into a fixed
  network of that arc: the same logits (train mode; macro also inference
  mode with the running statistics the step updated). Catches a wrong
  bank row (node, slot or input), a wrong state read, a wrong loose end or
  a wrong (layer, op) or skip."""
  net, variables = _shared(space)
  arcs = _arcs(space, 3)
  if space is MICRO:
    arcs.append(_micro_arc_with_loose_input())
  for arc in arcs:
    logits, stats = _forward(space)(variables, arc)
    fixed = child_lib.child(space, arc, **KW[space])
    if space is MICRO:
      params = child_lib.fixed_params(space, variables['params'], arc)
      want = fixed.apply({'params': params}, X, None, train=True)[0]
    else:
      params, bs = child_lib.fixed_params(space, variables['params'], arc,
                                          variables['batch_stats'])
      (want, _), new = fixed.apply({'params': params, 'batch_stats': bs}, X,
                                   None, train=True, mutable=['batch_stats'])
      _, sliced = child_lib.fixed_params(space, variables['params'], arc,
                                         stats)
      chex.assert_trees_all_close(sliced, new['batch_stats'], atol=1e-5)
      got = net.apply({'params': variables['params'], 'batch_stats': stats},
                      X, arc, train=False)
      want_eval = fixed.apply({'params': params, 'batch_stats': sliced}, X,
                              None, train=False)
      np.testing.assert_allclose(got, want_eval, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('space', [MICRO, MACRO], ids=['micro', 'macro'])
def test_shared_child_gradient_equals_the_fixed_networks(space):
  """The gradient of a loss through the shared child (its op switches have
  a hand-written VJP that recomputes the chosen op, `enas.ops.switch`),
  sliced like the weights, equals the fixed network's gradient; the rows
  of weights the arc does not use get exactly zero."""
  net, variables = _shared(space)
  arc = (_micro_arc_with_loose_input() if space is MICRO else
         _arcs(space, 1, seed=3)[0])
  fixed = child_lib.child(space, arc, **KW[space])
  stats = variables.get('batch_stats', {})

  def loss(net, params, arc, stats):
    (logits, _), _ = net.apply({'params': params, 'batch_stats': stats}, X,
                               arc, train=True, mutable=['batch_stats'])
    return jnp.sum(jnp.sin(logits))

  g_shared = jax.jit(jax.grad(functools.partial(loss, net)))(
      variables['params'], arc, stats)
  if space is MICRO:
    params, bs = child_lib.fixed_params(space, variables['params'], arc), {}
    sliced = child_lib.fixed_params(space, g_shared, arc)
  else:
    params, bs = child_lib.fixed_params(space, variables['params'], arc,
                                        stats)
    sliced = child_lib.fixed_params(space, g_shared, arc)
  g_fixed = jax.grad(functools.partial(loss, fixed))(params, None, bs)
  chex.assert_trees_all_close(sliced, g_fixed, rtol=1e-4, atol=1e-5)
  total = sum(float(jnp.sum(jnp.abs(g))) for g in jax.tree.leaves(g_shared))
  used = sum(float(jnp.sum(jnp.abs(g))) for g in jax.tree.leaves(sliced))
  assert total == pytest.approx(used, rel=1e-6)


@pytest.mark.parametrize('space', [MICRO, MACRO], ids=['micro', 'macro'])
def test_one_compiled_forward_serves_20_arcs(space):
  """20 different arcs through one jitted forward: traced once
  (`chex.assert_max_traces`), and the arc changes the output."""
  _, variables = _shared(space)
  outs = [np.asarray(_forward(space)(variables, a)[0])
          for a in _arcs(space, 20, seed=2)]
  distinct = {o.tobytes() for o in outs}
  assert len(distinct) >= 15, len(distinct)


def test_fixed_network_holds_only_its_arcs_weights():
  """A fixed micro network of an all-pooling arc has no separable weights;
  the shared child's per-input banks are [2B slots, B + 2 inputs, ...]."""
  arc = np.asarray(_arcs(MICRO, 1)[0])
  arc[:, 1::2] = 2  # Every op avg_pool.
  fixed = child_lib.child(MICRO, arc, **KW[MICRO])
  params = jax.eval_shape(lambda: fixed.init(
      {'params': jax.random.key(0)}, X, None, train=True))['params']
  names = {k for cell in params.values() if isinstance(cell, dict)
           for k in cell}
  assert not any(k.endswith('_dw') for k in names), names
  _, variables = _shared(MICRO)
  # cell2 follows both reductions: 4 filters doubled twice.
  assert variables['params']['cell2']['sep5_dw'].shape == (4, 4, 2, 5, 5, 16)


def test_sgdr_restarts_at_10_30_70_150_310_630():
  """The reference's cosine with warm restarts (T0 10, T_mul 2), per epoch."""
  lr = step_lib.sgdr(0.05, 0.0005, t0=10, t_mul=2, steps_per_epoch=3)
  at = lambda epoch, k=0: float(lr(3 * epoch + k))
  for restart in (0, 10, 30, 70, 150, 310, 630):
    assert at(restart) == pytest.approx(0.05), restart
    assert at(restart, 2) == pytest.approx(0.05), restart  # Per epoch.
  mid = 0.0005 + 0.5 * (0.05 - 0.0005)
  assert at(5) == pytest.approx(mid) and at(20) == pytest.approx(mid)
  assert at(50) == pytest.approx(mid) and at(29) < 0.001
  rate = lambda e, t: 0.5 * (1 + np.cos(np.pi * e / t))
  assert at(13) == pytest.approx(0.0005 + (0.05 - 0.0005) * rate(3, 20))


def test_child_optimizer_l2_clip_nesterov():
  """update = Nesterov SGD of clip(g + 2 l2 w): L2 as in a loss carrying
  l2 * sum(w^2), and a clip that clips (the reference's does not)."""
  l2, clip, lr, mu = 1e-2, 1.0, 0.1, 0.9
  tx = step_lib.child_optimizer(lambda s: lr, l2=l2, clip=clip, momentum=mu)
  w = {'a': jnp.asarray([1.0, -2.0]), 'b': jnp.asarray([3.0])}
  g = {'a': jnp.asarray([10.0, 0.0]), 'b': jnp.asarray([-5.0])}
  state = tx.init(w)
  total = jax.tree.map(lambda g, w: g + 2 * l2 * w, g, w)
  norm = float(optax.global_norm(total))
  assert norm > clip
  clipped = jax.tree.map(lambda t: t * clip / norm, total)
  for _ in range(2):  # The second update has momentum.
    upd, state = tx.update(g, state, w)
  # Nesterov with a fixed w and g: v1 = c, v2 = mu c + c; step -lr (mu v2 + c).
  want = jax.tree.map(lambda c: -lr * (mu * (mu * c + c) + c), clipped)
  chex.assert_trees_all_close(upd, want, rtol=1e-6)


def test_drop_path_ramp():
  """Rate at the last cell: ramps in linearly over the run to 1 - keep."""
  rate = step_lib.drop_path_ramp(0.6, total_steps=100)
  assert float(rate(0)) == pytest.approx(0.4 / 100)
  assert float(rate(49)) == pytest.approx(0.2)
  assert float(rate(99)) == pytest.approx(0.4)
  assert float(rate(500)) == pytest.approx(0.4)
  assert step_lib.drop_path_ramp(1.0, 100) is None


def test_micro_search_child_counts_the_weights_the_reference_allocates():
  """The reference's micro search child (F=20, 6 layers, 5 nodes, CIFAR-10,
  no auxiliary head) allocates 5,373,140 weights; ours banks every
  separable op as [2B slots, B + 2 inputs, ...] (9,261,140, of which
  3,888,000 no slot can read) and `param_count` counts what is readable."""
  from nasjax.configs import enas_search  # pylint: disable=g-import-not-at-top
  from nasjax.enas import search  # pylint: disable=g-import-not-at-top
  from nasjax import layers  # pylint: disable=g-import-not-at-top
  c = enas_search.get_config('micro')
  space = search.make_space(c)
  net = search.make_model(c, space, 10)
  arc = jnp.asarray(space.random_arc(np.random.default_rng(0)))
  keys = {k: jax.random.key(i) for i, k in
          enumerate(('params', 'dropout', 'drop_path'))}
  params = jax.eval_shape(lambda: net.init(keys, jnp.zeros((2, 32, 32, 3)),
                                           arc, train=True))['params']
  no_aux = {k: v for k, v in params.items() if k != 'aux_head'}
  assert layers.param_count(no_aux) == 9_261_140
  assert child_lib.param_count(params) == 5_373_140
  # A fixed arc's network has no unreadable rows: both counts agree.
  fixed = child_lib.child(MICRO, MICRO.random_arc(np.random.default_rng(1)),
                          **KW[MICRO])
  p = jax.eval_shape(lambda: fixed.init({'params': jax.random.key(0)}, X,
                                        None, train=True))['params']
  assert child_lib.param_count(p) == layers.param_count(p)


# What the search children compute, checked against independent NumPy
# transcriptions of the search wiring (melodyguan/enas `micro_child.py` and
# `general_child.py`, `_enas_layer`), in float64 with random weights and
# BatchNorm parameters. The shared child runs the arc through its switches
# and weight banks; the NumPy pass reads the weights `fixed_params` slices
# out for that arc. The shared-equals-fixed tests above cannot see an op
# built as the wrong op (both sides share the op table), nor can the final
# networks' tests (they build their own ops).


def _np_search_micro_cell(tokens, f, s0, s1, p):
  """A search cell (stride 1; batch-statistics BN everywhere)."""
  if s0.shape[1] != s1.shape[1]:
    s0 = ref._np_reduce(s0, p['calibrate_x'], relu=True)
  elif s0.shape[-1] != f:
    s0 = ref._np_conv1x1(s0, p['calibrate_x'])
  if s1.shape[-1] != f:
    s1 = ref._np_conv1x1(s1, p['calibrate_y'])
  states, used = [s0, s1], set()
  for i in range(len(tokens) // 4):
    out = 0.0
    for k, slot in enumerate('xy'):
      idx, op = tokens[4 * i + 2 * k], tokens[4 * i + 2 * k + 1]
      h, name = states[idx], f'node{i}_{slot}'
      if op in (0, 1):
        for t in range(2):
          h = ref._np_depthwise(np.maximum(h, 0), p[f'{name}_dw'][t], 1)
          h = ref._np_bn(h @ p[f'{name}_pw'][t],
                     {'scale': p[f'{name}_scale'][t],
                      'offset': p[f'{name}_offset'][t]})
      elif op in (2, 3):
        h = ref._np_pool(h, 1, 'avg' if op == 2 else 'max')
      out = out + h
      used.add(idx)
    states.append(out)
  loose = np.concatenate([st for j, st in enumerate(states) if j not in used],
                         -1)
  return ref._np_bn(np.maximum(loose, 0) @ p['final_conv'], p['final_bn'])


def _np_search_micro_child(arc, f, num_layers, x, p):
  x = ref._np_bn(ref._np_conv(x, p['stem']), p['stem_bn'])
  s0 = s1 = x
  d = num_layers // 3
  for layer in range(num_layers + 2):
    reduction = layer in (d, 2 * d + 1)
    if reduction:  # Reduced before the cell, which runs at stride 1.
      f *= 2
      s0, s1 = s1, ref._np_reduce(s1, p[f'reduce{layer}'])
    out = _np_search_micro_cell(arc[int(reduction)], f, s0, s1,
                                p[f'cell{layer}'])
    s0, s1 = s1, out
  return np.maximum(s1, 0).mean((1, 2)) @ p['fc']


def _np_search_macro_child(ops, skips, x, p, s):
  """The macro search child in inference (running statistics)."""
  states = [ref._np_bn(ref._np_conv(x, p['stem']), p['stem_bn'],
                       s['stem_bn'])]
  d = len(ops) // 3
  for i, op in enumerate(ops):
    q, t = p[f'layer{i}'], s[f'layer{i}']
    y = np.maximum(ref._np_bn(states[-1] @ q['inp'], q['inp_bn'], t['inp']),
                   0)
    if op in (4, 5):
      y = ref._np_pool(y, 1, 'avg' if op == 4 else 'max')
    else:
      y = (ref._np_depthwise(y, q['dw'], 1) @ q['pw'] if op in (1, 3) else
           ref._np_conv(y, q['w']))
      y = np.maximum(ref._np_bn(y, q['out_bn'], t['out'], eps=1e-3), 0)
    if i > 0:
      y = y + sum(states[j] for j in range(i) if skips[i][j])
      y = ref._np_bn(y, p[f'skip_bn{i}'], s[f'skip_bn{i}'])
    states.append(y)
    if i in (d - 1, 2 * d - 1):
      states = [ref._np_reduce(st, p[f'reduce{i}_from{j}'],
                           s[f'reduce{i}_from{j}'])
                for j, st in enumerate(states)]
  return states[-1].mean((1, 2)) @ p['fc']


def _randomise(tree, rng):
  """Random BN affine parameters and statistics (by name suffix), weights as
  initialised; float64."""
  def one(path, leaf):
    name = str(path[-1].key)
    kind = next((k for k in ('scale', 'offset', 'mean', 'var')
                 if name == k or name.endswith('_' + k)), None)
    return ref._randomised(kind or name, leaf, rng)
  return jax.tree_util.tree_map_with_path(one, jax.device_get(tree))


def _randomised_run(net, arc, batch: int, seed: int):
  """(x float64, the child's variables with random BN, its float32
  inference logits for `arc`) on random 8x8x3 images."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(batch, 8, 8, 3))
  v = _randomise(net.init({'params': jax.random.key(0)}, x.astype(np.float32),
                          arc, train=False), rng)
  got = net.apply(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), v),
                  x.astype(np.float32), arc, train=False)
  return x, v, got


def test_micro_search_child_equals_an_independent_numpy_forward_pass():
  """Every micro op in both cells (separable 3x3 and 5x5, average and max
  pools, identity), a reduction cell reading its factorised-reduced input,
  a loose cell input in the output: the shared child's logits for this arc
  equal the NumPy search cell on the weights sliced for the arc."""
  space = MicroSpace(num_nodes=3)
  normal = (0, 0, 1, 2, 2, 3, 1, 4, 0, 1, 3, 0)
  reduce = (1, 1, 1, 3, 2, 4, 1, 2, 3, 0, 1, 4)
  assert space.loose_ends(reduce) == [0, 4]
  arc = np.asarray([normal, reduce])
  net = child_lib.child(space, channels=4, num_layers=3, aux_head=False,
                        keep_prob=1.0)
  x, v, got = _randomised_run(net, arc, batch=4, seed=0)
  p = jax.device_get(child_lib.fixed_params(space, v['params'], arc))
  want = _np_search_micro_child((normal, reduce), 4, 3, x, p)
  np.testing.assert_allclose(got, want, rtol=1e-4,
                             atol=1e-4 * np.abs(want).max())


def test_macro_search_child_equals_an_independent_numpy_forward_pass():
  """Six layers using the six macro ops, skips from the stem and across
  both reductions, random BN parameters and running statistics: the shared
  child's inference logits for this arc equal the NumPy search wiring
  (skips added, then BN; filters stay F at the reductions)."""
  space = MacroSpace(num_layers=6)
  ops = np.asarray([0, 1, 4, 2, 5, 3])
  skips = np.zeros((6, 6), np.int32)
  skips[2, 0] = skips[3, 1] = skips[5, 0] = skips[5, 3] = 1
  arc = {'ops': ops, 'skips': skips}
  net = child_lib.child(space, channels=4, keep_prob=1.0)
  x, v, got = _randomised_run(net, arc, batch=2, seed=1)
  p, s = jax.device_get(child_lib.fixed_params(space, v['params'], arc,
                                               v['batch_stats']))
  want = _np_search_macro_child(ops, skips, x, p, s)
  np.testing.assert_allclose(got, want, rtol=1e-4,
                             atol=1e-4 * np.abs(want).max())
