"""The Hessian monitor (`nasjax.hessian`) against dense eigendecompositions.

The Lanczos eigenvalues of the architecture loss's Hessian, from
forward-over-reverse products through the search network, are compared in
float64 with the eigenvalues of the full Hessian built by `jax.hessian`, for
the first-order loss and for the unrolled loss of exact second order; the
Lanczos iteration alone with matrices whose spectra are known; the
early-stopping rule with eigenvalue sequences worked out by hand.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from nasjax import bilevel
from nasjax import hessian
from nasjax import optim
from nasjax.darts import model as model_lib
from nasjax.search_spaces import DartsCellSpace
from nasjax.train_state import SearchState
from tests import helpers


# The tests' search network with one node per cell: 16 alpha entries, so
# the dense third-order Hessian of the unrolled loss compiles in seconds.
SPACE = DartsCellSpace(helpers.SPACE.primitives, steps=1)
MODEL = model_lib.SearchNetwork(SPACE, channels=4, num_classes=10, layers=3)


@functools.cache
def _problem():
  """A float64 search state (alpha scaled up so the softmax is not uniform)
  with a momentum buffer, its batches and its family."""
  with jax.enable_x64(True):
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    alpha = model_lib.init_alpha(SPACE, k2, 0.7)
    v = MODEL.init(k1, jnp.zeros((2,) + helpers.IMAGE_SHAPE), alpha,
                   train=False)
    tx = optim.weight_optimizer(helpers.schedule(0.1), momentum=0.9,
                                weight_decay=3e-4, clip=5.0)
    arch_tx = optim.arch_optimizer(3e-4, b1=0.5, b2=0.999, weight_decay=1e-3)
    state = SearchState.create(params=v['params'],
                               batch_stats=v['batch_stats'], alpha=alpha,
                               tx=tx, arch_tx=arch_tx, rng=k3)
    g = jax.tree.map(lambda p: 0.05 * jnp.cos(jnp.arange(p.size).reshape(
        p.shape)).astype(p.dtype), state.params)
    _, opt_state = state.tx.update(g, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, opt_state=opt_state)
  family = bilevel.family_of(MODEL, helpers.PREP64)
  return state, helpers.batch(11, 4), helpers.batch(12, 4), family


@functools.cache
def _dense(objective):
  """The eigenvalues (descending) of the Hessian built by `jax.hessian`."""
  state, tb, vb, family = _problem()
  with jax.enable_x64(True):
    f = hessian.alpha_loss(state, vb, tb, family=family, objective=objective)
    flat, unravel = ravel_pytree(state.alpha)
    dense = np.asarray(jax.jit(jax.hessian(lambda x: f(unravel(x))))(flat))
  assert dense.dtype == np.float64
  # Symmetric to rounding (float64's, grown by the third derivative through
  # BatchNorm's one-pass variance: 4e-9 of the largest entry here).
  np.testing.assert_allclose(dense, dense.T, atol=1e-7 * np.abs(dense).max())
  return np.sort(np.linalg.eigvalsh(dense))[::-1]


@pytest.mark.parametrize('objective', hessian.OBJECTIVES)
def test_lanczos_eigenvalues_equal_the_dense_hessians(objective):
  state, tb, vb, family = _problem()
  expected = _dense(objective)
  with jax.enable_x64(True):
    # The monitor's default of 20 products is capped at alpha's 16 entries.
    got = np.asarray(jax.jit(functools.partial(
        hessian.top_eigenvalues, family=family, objective=objective))(
            state, vb, tb, jax.random.key(1)))
  assert got.dtype == np.float64 and got.shape == expected.shape == (16,)
  scale = np.abs(expected).max()
  assert scale > 1e-2  # A Hessian worth comparing.
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * scale)


def test_the_two_objectives_differ():
  """The unrolled loss's Hessian is not the fixed-weight one, so the test
  above compares two different things."""
  val, unrolled = _dense('val'), _dense('unrolled')
  assert np.abs(val - unrolled).max() > 1e-3 * np.abs(val).max()


def test_lanczos_finds_known_spectra_with_repeats():
  """A spectrum with a repeated eigenvalue and a start vector in an
  invariant subspace: the Krylov space closes early and the iteration
  restarts; all eigenvalues come back."""
  with jax.enable_x64(True):
    rs = np.random.RandomState(0)
    q, _ = np.linalg.qr(rs.randn(7, 7))
    spectrum = np.array([5.0, 2.0, 2.0, 2.0, -1.0, 0.0, -3.0])
    a = jnp.asarray(q @ np.diag(spectrum) @ q.T)
    got = hessian.lanczos(lambda v: a @ v, jnp.asarray(q[:, 0] + q[:, 4]), 7,
                          jax.random.key(3))
    np.testing.assert_allclose(np.asarray(got), np.sort(spectrum)[::-1],
                               atol=1e-10)
    # An eigenvector as the start: the residual is exactly 0 at once.
    got = hessian.lanczos(lambda v: jnp.asarray(spectrum) * v,
                          jnp.eye(7)[0], 7, jax.random.key(3))
    np.testing.assert_allclose(np.asarray(got), np.sort(spectrum)[::-1],
                               atol=1e-10)
    # 20 products find the top of a 200-dimensional spectrum whose largest
    # eigenvalues are separated (the Hessians' case: a few outliers).
    q, _ = np.linalg.qr(rs.randn(200, 200))
    spectrum = np.concatenate([[40.0, 25.0], rs.uniform(-1, 3, 198)])
    a = jnp.asarray(q @ np.diag(spectrum) @ q.T)
    got = hessian.lanczos(lambda v: a @ v, jnp.asarray(rs.randn(200)), 20)
    np.testing.assert_allclose(np.asarray(got[:2]), [40.0, 25.0], rtol=1e-9)
  with pytest.raises(ValueError, match='num_iterations'):
    hessian.lanczos(lambda v: v, jnp.ones(3), 4)


def test_robust_darts_stop_by_hand():
  # Flat, then rising: window 3 (half 1), k 2, ratio 0.75.
  ev = [1.0, 1.0, 1.0, 1.0, 1.0, 1.3, 2.0]
  # Latest centred epoch 5: mean(1, 1.3, 2) = 1.4333; epoch 3: 1.0.
  # 1.0 / 1.4333 = 0.698 < 0.75: stop, back to epoch 3.
  assert hessian.robust_darts_stop(ev, window=3, k=2) == 3
  # One epoch earlier: epoch 4's mean (1, 1, 1.3) = 1.1, epoch 2's 1.0;
  # 1 / 1.1 = 0.909: go on.
  assert hessian.robust_darts_stop(ev[:-1], window=3, k=2) is None
  # Falling eigenvalues never stop; nor do too few epochs.
  assert hessian.robust_darts_stop(ev[::-1], window=3, k=2) is None
  assert hessian.robust_darts_stop([1.0, 9.0], window=3, k=2) is None
  # Not before start_epoch.
  assert hessian.robust_darts_stop(ev, window=3, k=2, start_epoch=4) is None
  # The paper's window 5, k 5: epochs 0-11, 12 values.
  ev = [1.0] * 9 + [2.0, 2.0, 2.0]
  # Latest centred epoch 9: mean(ev[7:12]) = 1.6; epoch 4: 1.0. 0.625.
  assert hessian.robust_darts_stop(ev) == 4
  with pytest.raises(ValueError, match='odd'):
    hessian.robust_darts_stop(ev, window=4)


def test_the_search_records_the_eigenvalues_and_stops_early(tmp_path):
  """The DARTS search with the monitor on: every epoch's record holds the
  eigenvalues of the state it ends with, on the fixed batch (checked
  against a dense Hessian of the final state); an early stop fires where
  the rule says, saves, and returns the genotype of the epoch it names."""
  from nasjax import configs  # pylint: disable=g-import-not-at-top
  from nasjax.darts import search  # pylint: disable=g-import-not-at-top
  from nasjax.data import pipeline  # pylint: disable=g-import-not-at-top
  ds = helpers.small_digits()
  c = helpers.override(configs.search('tiny'), **{
      'search.arch_mode': 'first_order', 'epochs': 8, 'max_steps': 0,
      'hessian.every_epochs': 1, 'hessian.iterations': 40,
      'hessian.early_stop': True, 'hessian.window': 1, 'hessian.k': 1,
      'hessian.ratio': 0.9, 'checkpoint_every_steps': 100})
  result = search.search(c, str(tmp_path), ds, progress='none')
  evs = [r.train[hessian.METRICS[0]] for r in result.history]
  stop = result.summary['early_stop']
  # The rule fired after the epoch it says, for the first time.
  last = stop['stopped_after_epoch']
  assert len(evs) == last + 1 < c.epochs
  assert stop['epoch'] == last - 1 and evs[last - 1] / evs[last] < 0.9
  assert all(evs[i - 1] / evs[i] >= 0.9 for i in range(1, last))
  assert result.genotype == result.history[stop['epoch']].genotype
  assert int(result.state.step) == (last + 1) * 4
  assert os.path.exists(tmp_path / 'hessian.png')
  saved = helpers.restore_latest(str(tmp_path), result.state)
  assert int(saved[1]['step']) == int(result.state.step)
  # The last record's eigenvalues are the final state's, on the first val
  # batch of seed + 7 (Lanczos at 40 = alpha's size: every eigenvalue).
  _, val, _, _ = pipeline.bilevel_halves(
      ds.train, c.data.train_portion, c.batch_size, c.epochs, 0)
  first = lambda split: next(pipeline.batches(split, c.batch_size,
                                              seed=c.seed + 7))[1]
  _, model, _, _, prep, _ = search.build(c, ds, 4)
  family = bilevel.family_of(model, prep)
  state = result.state
  f = hessian.alpha_loss(state, first(val), family=family)
  flat, unravel = ravel_pytree(state.alpha)
  dense = np.asarray(jax.jit(jax.hessian(lambda x: f(unravel(x))))(flat))
  expected = np.linalg.eigvalsh((dense + dense.T) / 2)
  record = result.history[-1].train
  np.testing.assert_allclose(
      [record['hessian_max_eigenvalue'], record['hessian_min_eigenvalue']],
      [expected[-1], expected[0]], rtol=2e-3, atol=1e-4 * expected[-1])


def test_the_nb201_darts_search_records_the_eigenvalues(tmp_path):
  """The one-shot loop (NB201, DARTS): the eigenvalues are recorded,
  TensorBoard and hessian.png get them; a strategy that samples cells is
  refused the monitor."""
  from nasjax import configs  # pylint: disable=g-import-not-at-top
  from nasjax import errors  # pylint: disable=g-import-not-at-top
  from nasjax import one_shot  # pylint: disable=g-import-not-at-top
  c = helpers.override(configs.one_shot('nb201_darts_tiny'), **{
      'hessian.every_epochs': 1, 'hessian.iterations': 6})
  result = one_shot.search(c, str(tmp_path), helpers.small_digits(), progress='none')
  record = result.history[-1].train
  values = [record[m] for m in hessian.METRICS]
  assert np.all(np.isfinite(values)) and values == sorted(values)[::-1]
  assert values[0] > 0
  assert os.path.exists(tmp_path / 'hessian.png')
  assert 'epoch/hessian_max_eigenvalue' in helpers.event_tags(
      str(tmp_path / 'tb'))['scalars']
  for name in ('nb201_gdas_tiny', 'nb201_rsps_tiny'):
    c = helpers.override(configs.one_shot(name), **{
        'hessian.every_epochs': 1})
    with pytest.raises(errors.ConfigError, match='hessian.every_epochs'):
      one_shot.search(c, None, helpers.small_digits(), progress='none')
  c = helpers.override(configs.one_shot('nb201_darts_tiny'), **{
      'hessian.early_stop': True})
  with pytest.raises(errors.ConfigError, match='hessian.early_stop'):
    one_shot.search(c, None, helpers.small_digits(), progress='none')
  c.hessian.every_epochs, c.hessian.window = 1, 4
  with pytest.raises(errors.ConfigError, match='hessian.window'):
    one_shot.search(c, None, helpers.small_digits(), progress='none')
