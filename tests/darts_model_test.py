"""The search network: parameter counts and the scanned cell's equivalence."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasjax import layers
from nasjax.darts import model as model_lib
from nasjax.search_spaces import DartsCellSpace
from tests import helpers


@pytest.mark.parametrize('channels,num_layers,expected', [
    (16, 8, 1_930_618),  # docs/reference_figures.md 3
    (8, 5, 394_210),
])
def test_weight_count_matches_reference(channels, num_layers, expected):
  space = DartsCellSpace()
  net = model_lib.SearchNetwork(space, channels, 10, num_layers)
  alpha = model_lib.init_alpha(space, jax.random.key(0))
  shapes = jax.eval_shape(lambda: net.init(
      jax.random.key(0), jnp.zeros((2, 32, 32, 3)), alpha, train=False))
  assert layers.param_count(shapes['params']) == expected
  assert set(shapes) == {'params', 'batch_stats'}  # alpha is not in there.
  chex.assert_shape(alpha['normal'], (14, 8))
  chex.assert_shape(alpha['reduce'], (14, 8))


def test_alpha_init_scale():
  a = model_lib.init_alpha(DartsCellSpace(), jax.random.key(0))
  assert 0.5e-3 < float(jnp.std(a['normal'])) < 2e-3


@pytest.mark.parametrize('stride', [1, 2])
def test_edge_scan_equals_independent_mixed_ops(stride):
  """The scanned edges compute exactly the literal per-edge mixed ops."""
  prims = model_lib.darts_cell.PRIMITIVES
  c, n_states = 4, 4
  key = jax.random.key(0)
  inputs = jax.random.normal(key, (2, 2, 8, 8, c))
  out_hw = 8 // stride
  if stride == 2:
    states = jnp.zeros((n_states, 2, out_hw, out_hw, c))
    edges = ((2, 0), (2, 1), (3, 0), (3, 1))
  else:
    states = jnp.concatenate([inputs, jnp.zeros((2, 2, 8, 8, c))])
    edges = ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
  weights = jax.nn.softmax(jax.random.normal(key, (len(edges), len(prims))))
  scan = model_lib.EdgeScan(prims, c, stride, edges, True)
  v = scan.init(jax.random.key(1), states, weights, inputs)
  got, upd = scan.apply(v, states, weights, inputs, mutable=['batch_stats'])

  expected = states
  mixed = model_lib.MixedOp(prims, c, stride)
  for e, (dst, src) in enumerate(edges):
    sub = jax.tree.map(lambda a: a[e], v)  # noqa: B023
    sub = {k: t['scan']['mixed'] for k, t in sub.items()}
    x = (inputs if stride == 2 else expected)[src]
    y, _ = mixed.apply(sub, x, weights[e], True, mutable=['batch_stats'])
    expected = expected.at[dst].add(y)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_equal_shapes(upd['batch_stats'], v['batch_stats'])


def test_search_network_forward_and_train_mode_stats():
  state = helpers.make_state()
  x = helpers.PREP(jnp.asarray(helpers.batch(0)['image']), None, False)
  logits, upd = helpers.MODEL.apply(
      {'params': state.params, 'batch_stats': state.batch_stats}, x,
      state.alpha, train=True, mutable=['batch_stats'])
  chex.assert_shape(logits, (8, 10))
  chex.assert_tree_all_finite(logits)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                         upd['batch_stats'], state.batch_stats)
  assert all(jax.tree.leaves(changed))


def test_remat_gives_the_same_gradients():
  """Float64: recomputing in the backward pass changes nothing but rounding."""
  prims = ('none', 'max_pool_3x3', 'skip_connect', 'sep_conv_3x3')
  with jax.enable_x64(True):
    key = jax.random.key(0)
    states = jax.random.normal(key, (4, 2, 8, 8, 4), jnp.float64)
    weights = jax.nn.softmax(jax.random.normal(key, (3, len(prims)),
                                               jnp.float64))
    edges = ((2, 0), (2, 1), (3, 2))
    grads = []
    for remat in (False, True):
      scan = model_lib.EdgeScan(prims, 4, 1, edges, True, remat)
      v = scan.init(jax.random.key(1), states, weights, states[:2])
      v = jax.tree.map(lambda a: a.astype(jnp.float64), v)

      def loss(p, w, scan=scan, v=v):
        out, _ = scan.apply({'params': p, 'batch_stats': v['batch_stats']},
                            states, w, states[:2], mutable=['batch_stats'])
        return jnp.sum(jnp.sin(out))

      grads.append(jax.grad(loss, argnums=(0, 1))(v['params'], weights))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10,
                                                       atol=1e-12), *grads)


def test_a_mixing_is_used_as_given_and_a_genotype_mixes_its_edges():
  """The DARTS cell's one-shot space: the supernet under
  `Mixing(softmax(alpha))` is the supernet under alpha; a genotype's mixing
  has one op on each of its edges and `none` elsewhere, and derives back to
  the genotype; under it the output does not depend on the weights of
  edges the genotype does not use."""
  from nasjax import genotype  # pylint: disable=g-import-not-at-top
  from nasjax import mixing  # pylint: disable=g-import-not-at-top
  from nasjax.search_spaces import darts_cell_one_shot  # pylint: disable=g-import-not-at-top
  space = darts_cell_one_shot.SPACE
  model = model_lib.SearchNetwork(space.cell, 4, 10, 3)
  alpha = model_lib.init_alpha(space.cell, jax.random.key(1), 1.0)
  x = jax.random.normal(jax.random.key(2), (4, 8, 8, 3))
  variables = model.init(jax.random.key(0), x, alpha, train=False)
  apply = lambda a, params=variables['params']: model.apply(
      {**variables, 'params': params}, x, a, train=True,
      mutable=['batch_stats'])[0]
  soft = {t: mixing.Mixing(jax.nn.softmax(a, -1)) for t, a in alpha.items()}
  np.testing.assert_allclose(apply(soft), apply(alpha), rtol=1e-6,
                             atol=1e-6)
  with pytest.raises(ValueError, match=r"alpha\['normal'\] has shape"):
    apply({t: a[:, :4] for t, a in alpha.items()})
  g = genotype.DARTS_V2
  hard = space.arch_mixing(g)
  prims = space.cell.primitives
  index = {}
  for t, pairs in (('normal', g.normal), ('reduce', g.reduce)):
    w = hard[t].weights
    assert w.shape == (14, 8) and w.sum() == len(pairs) == 8
    assert set(np.unique(w)) == {0.0, 1.0}  # DARTS_V2: distinct inputs.
    index[t] = np.where(w.any(1), w.argmax(1), 0)
    for k, (op, j) in enumerate(pairs):
      assert prims[index[t][space.cell.edge_index(k // 2, j)]] == op
  back = space.from_alpha({t: np.eye(8)[i] for t, i in index.items()})
  for a, b in ((back.normal, g.normal), (back.reduce, g.reduce)):
    assert [sorted(a[2 * n:2 * n + 2]) for n in range(4)] == [
        sorted(b[2 * n:2 * n + 2]) for n in range(4)]
  assert space.from_string(space.to_string(g)) == g
  # Perturb the weights of one normal edge of cell 0: an edge the genotype
  # does not use changes nothing, one it uses changes the output.

  def scaled(edge):
    return jax.tree_util.tree_map_with_path(
        lambda p, v: v.at[edge].add(0.3 * jax.random.normal(
            jax.random.key(edge), v.shape[1:])) if (
                'cell0' in str(p) and v.ndim and v.shape[0] == 14) else v,
        variables['params'])

  unused = int(np.flatnonzero(index['normal'] == 0)[0])
  used = int(np.flatnonzero(index['normal'] == prims.index('sep_conv_3x3'))[0])
  np.testing.assert_allclose(apply(hard, scaled(unused)), apply(hard),
                             rtol=1e-6, atol=1e-6)
  assert not np.allclose(apply(hard, scaled(used)), apply(hard), atol=1e-4)
