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
