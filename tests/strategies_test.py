"""The one-shot strategies' mixing (`nasjax.strategies`): what a pass
samples, its gradient, and the schedule it follows."""

import jax
import jax.numpy as jnp
import numpy as np

from nasjax import one_shot
from nasjax import strategies
from nasjax.strategies import gdas

LOGITS = jnp.log(jnp.asarray([[0.5, 0.2, 0.15, 0.1, 0.05],
                              [0.05, 0.05, 0.1, 0.3, 0.5]]))


def test_gumbel_max_samples_follow_softmax_alpha_at_any_temperature():
  """The hard sample is the argmax of log-softmax(alpha) + Gumbel noise,
  whose law is softmax(alpha) (the Gumbel-max trick), whatever tau."""
  n = 20000
  for tau in (10.0, 0.1):
    idx = jax.vmap(lambda k: gdas.gumbel_hard(LOGITS, k, tau)[1])(
        jax.random.split(jax.random.key(0), n))
    for e in range(2):
      freq = np.bincount(np.asarray(idx[:, e]), minlength=5) / n
      p = np.asarray(jax.nn.softmax(LOGITS[e]))
      np.testing.assert_array_less(np.abs(freq - p),
                                   5 * np.sqrt(p * (1 - p) / n) + 1e-9)


def test_the_hard_sample_is_one_hot_with_the_soft_gradient():
  key, tau = jax.random.key(3), 0.7
  h, idx = gdas.gumbel_hard(LOGITS, key, tau)
  np.testing.assert_array_equal(h, jax.nn.one_hot(idx, 5))
  c = jax.random.normal(jax.random.key(4), (2, 5))
  g = jax.random.gumbel(key, LOGITS.shape)

  def soft(logits):  # The Gumbel-softmax relaxation itself.
    return jax.nn.softmax((jax.nn.log_softmax(logits) + g) / tau)

  np.testing.assert_array_equal(jnp.argmax(soft(LOGITS), -1), idx)
  want = jax.grad(lambda a: jnp.sum(c * soft(a)))(LOGITS)
  got = jax.grad(lambda a: jnp.sum(c * gdas.gumbel_hard(a, key, tau)[0]))(
      LOGITS)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_gdas_anneals_tau_linearly_by_epoch_from_tau_max_to_tau_min():
  """tau = 10 at the first epoch, 0.1 at the last, linear by epoch (AutoDL:
  tau_max - (tau_max - tau_min) * epoch / (epochs - 1)), constant within an
  epoch; `OneShotFamily.prepare` gives the epoch fraction."""
  s = strategies.Gdas(10.0, 0.1)
  fam = one_shot.OneShotFamily(None, lambda x, k, t: x, s, steps_per_epoch=4,
                               epochs=5)
  batch = {'image': jnp.zeros((1, 1)), 'label': jnp.zeros((1,), jnp.int32)}
  taus = [float(s.tau(fam.prepare(jax.random.key(0), step, 0, batch)
                      ['progress'])) for step in range(20)]
  np.testing.assert_allclose(taus, np.repeat([10, 7.525, 5.05, 2.575, 0.1],
                                             4), rtol=1e-5)


def test_each_pass_samples_its_own_cell():
  """The arch and weight passes of a step, and consecutive steps, draw
  different keys, hence (mostly) different cells; random sampling is
  uniform per edge."""
  s = strategies.RandomSampling()
  fam = one_shot.OneShotFamily(None, lambda x, k, t: x, s, 10, 10)
  batch = {'image': jnp.zeros((1, 1)), 'label': jnp.zeros((1,), jnp.int32)}
  alpha = {'cell': jnp.zeros((6, 5))}
  rng = jax.random.key(0)
  cells = [tuple(np.asarray(s.mixing(
      alpha, fam.prepare(rng, step, salt, batch)['key'], 0.0)['cell'].index))
           for step in range(200) for salt in (0, 1)]
  assert len(set(cells)) > 390
  counts = np.bincount(np.asarray(cells).ravel(), minlength=5)
  assert np.all(np.abs(counts - 480) < 5 * np.sqrt(480 * 0.8)), counts
  m = s.mixing(alpha, jax.random.key(1), 0.0)['cell']
  np.testing.assert_array_equal(m.weights, jax.nn.one_hot(m.index, 5))


def test_darts_mixes_every_op_by_softmax_alpha():
  m = strategies.Darts().mixing({'cell': LOGITS}, None, 0.0)['cell']
  assert m.index is None
  np.testing.assert_allclose(m.weights, jax.nn.softmax(LOGITS, -1), rtol=1e-6)


def test_enas_decisions_over_the_darts_cell_mix_and_derive_genotypes():
  """ENAS's micro decisions over the DARTS cell (`CellDecisions`): a
  hand-written arc's mixing (edges numbered by hand: node 0 reads edges 0-1,
  node 1 edges 2-4, node 2 edges 5-8, node 3 edges 9-13; ops as DARTS's
  primitives, `none` first), a node reading one input twice through two
  ops and through one op twice, its genotype, and the numpy mixing of that
  genotype equal to the traced one for sampled arcs.
  Catches: op columns off by one (`none` not skipped), input and op tokens
  swapped, a node's edges offset wrongly, a repeated pair set instead of
  added."""
  from nasjax import genotype  # pylint: disable=g-import-not-at-top
  from nasjax.strategies import controller  # pylint: disable=g-import-not-at-top
  from nasjax.search_spaces import darts_cell_one_shot  # pylint: disable=g-import-not-at-top
  space = darts_cell_one_shot.SPACE
  d = space.decisions()
  prims = ('none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect',
           'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5')
  assert space.cell.primitives == prims and d.ops == prims[1:]
  op = {name: k for k, name in enumerate(d.ops)}
  # Per node: input_1, op_1, input_2, op_2.
  normal = [[1, op['sep_conv_3x3'], 1, op['max_pool_3x3']],
            [0, op['skip_connect'], 2, op['dil_conv_5x5']],
            [3, op['sep_conv_5x5'], 3, op['sep_conv_5x5']],
            [4, op['avg_pool_3x3'], 0, op['dil_conv_3x3']]]
  reduce = [[0, op['max_pool_3x3'], 1, op['max_pool_3x3']]] * 4
  arc = np.asarray([sum(normal, []), sum(reduce, [])])
  want = np.zeros((14, 8))
  for e, k in ((1, 4), (1, 1), (2, 3), (4, 7), (8, 5), (8, 5), (13, 2),
               (9, 6)):
    want[e, k] += 1
  m = d.mixing(jnp.asarray(arc))
  np.testing.assert_array_equal(m['normal'].weights, want)
  assert m['normal'].index is None
  want_r = np.zeros((14, 8))
  for e in (0, 1, 2, 3, 5, 6, 9, 10):
    want_r[e, 1] = 1
  np.testing.assert_array_equal(m['reduce'].weights, want_r)
  g = space.from_decisions(arc)
  assert g.normal == (('sep_conv_3x3', 1), ('max_pool_3x3', 1),
                      ('skip_connect', 0), ('dil_conv_5x5', 2),
                      ('sep_conv_5x5', 3), ('sep_conv_5x5', 3),
                      ('avg_pool_3x3', 4), ('dil_conv_3x3', 0))
  assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
  assert genotype.from_notation(genotype.to_notation(g)) == g
  np.testing.assert_array_equal(space.arch_mixing(g)['normal'].weights, want)
  params = controller.init(jax.random.key(0), d)
  arcs = jax.vmap(lambda k: controller.sample(params, k, space=d).arc)(
      jax.random.split(jax.random.key(1), 50))
  for a in np.asarray(arcs):
    traced, host = d.mixing(a), space.arch_mixing(space.from_decisions(a))
    for t in ('normal', 'reduce'):
      np.testing.assert_array_equal(traced[t].weights, host[t].weights)


def test_micro_op_biases_by_name_are_the_references_on_its_ops():
  """The micro controller's op biases follow the op names: on ENAS's ops,
  in its order, the reference's [10, 10, 0, 0, 0] and fixed [0.25, 0.25,
  -0.25, -0.25, -0.25]; on the DARTS cell's, the same per name."""
  from nasjax.strategies import controller  # pylint: disable=g-import-not-at-top
  from nasjax.search_spaces import enas  # pylint: disable=g-import-not-at-top
  assert controller.op_bias(enas.MICRO_OPS) == (
      (10.0, 10.0, 0.0, 0.0, 0.0), (0.25, 0.25, -0.25, -0.25, -0.25))
  b, f = controller.op_bias(('max_pool_3x3', 'skip_connect', 'sep_conv_5x5',
                             'dil_conv_3x3'))
  assert b == (0.0, 0.0, 10.0, 0.0) and f == (-0.25, -0.25, 0.25, 0.0)
