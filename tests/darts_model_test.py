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
