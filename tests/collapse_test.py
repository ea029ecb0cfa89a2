"""The published fixes of DARTS's collapse, each against an independent
computation: beta-DARTS's regulariser (`strategies.darts.BetaDecay`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasjax import bilevel
from nasjax import configs
from nasjax import errors
from nasjax import one_shot
from nasjax.strategies import darts
from tests import helpers


def _alpha(seed=0):
  rs = np.random.RandomState(seed)
  return {'normal': rs.randn(14, 8), 'reduce': 2 * rs.randn(14, 8)}


def test_beta_decay_value_and_gradient_by_hand():
  alpha = _alpha()
  # sum over cell types of the mean over edges of log sum_k exp(alpha).
  by_hand = sum(np.mean(np.log(np.exp(a).sum(-1))) for a in alpha.values())
  with jax.enable_x64(True):
    value = darts.beta_decay(jax.tree.map(jnp.asarray, alpha))
    reg = darts.BetaDecay(per_epoch=0.5, steps_per_epoch=10)
    # Step 37 is in epoch 3: lambda = 1.5. The gradient: lambda softmax / E.
    grad = jax.grad(reg)(jax.tree.map(jnp.asarray, alpha), 37)
  np.testing.assert_allclose(float(value), by_hand, rtol=1e-12)
  for t, a in alpha.items():
    e = np.exp(a - a.max(-1, keepdims=True))
    np.testing.assert_allclose(grad[t], 1.5 * e / e.sum(-1, keepdims=True)
                               / a.shape[0], rtol=1e-10)
  assert float(reg(alpha, 9)) == 0.0  # Epoch 0: lambda = 0.


def test_the_arch_update_adds_the_regularisers_gradient():
  """alpha's step with the regulariser is arch_tx's step on g + its
  gradient (computed here in closed form)."""
  state = helpers.make_state(alpha_scale=0.5)
  g = jax.tree.map(lambda a: 0.01 * jnp.cos(a), state.alpha)
  state = state.replace(step=jnp.asarray(8))  # Epoch 4 of 2-step epochs.
  reg = darts.BetaDecay(per_epoch=0.5, steps_per_epoch=2)
  got = bilevel._arch_update(state, g, regularizer=reg)
  closed = {t: 2.0 * jax.nn.softmax(a, -1) / a.shape[0]
            for t, a in state.alpha.items()}
  want = bilevel._arch_update(state, jax.tree.map(jnp.add, g, closed))
  for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)


def test_the_nb201_search_takes_the_regulariser():
  """3 epochs of 4 steps. With lambda 50 per epoch the penalty's gradient
  (about 2 per entry) outweighs the loss's from epoch 1 on and pulls every
  logit down: each of the 30 ends below its start. Without it, some rise."""
  def run(per_epoch):
    c = configs.one_shot('nb201_darts_tiny')
    c.epochs, c.max_steps = 3, 0
    c.beta_decay.per_epoch = per_epoch
    r = one_shot.search(c, None, helpers.small_digits(), progress='none')
    init = one_shot.strategy_of(c).init_alpha(
        jax.random.split(jax.random.key(c.seed), 3)[1], {'cell': (6, 5)})
    return np.asarray(r.state.alpha['cell']) - np.asarray(init['cell'])

  assert np.all(run(50.0) < 0)
  assert np.any(run(0.0) > 0)
  c = configs.one_shot('nb201_rsps_tiny')
  c.beta_decay.per_epoch = 0.5
  with pytest.raises(errors.ConfigError, match='beta_decay.per_epoch'):
    one_shot.search(c, None, helpers.small_digits(), progress='none')
