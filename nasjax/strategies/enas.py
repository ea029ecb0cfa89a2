"""ENAS (Pham et al., 2018) on a one-shot space: an LSTM controller
samples one op per edge, the supernet's weights are trained under its
samples, and the controller is trained by REINFORCE on the sampled cells'
validation accuracy with the shared weights (AutoDL-Projects' NB201 ENAS).

Here alpha is `{'controller': the controller's weights, 'baseline': the
EMA of the reward}`; the bilevel step trains only the weights
(`learns_alpha = False`), under `mixing` (a cell sampled from the
controller, no gradient). The controller's updates are `update`, run by
the one-shot loop after every epoch: `train_steps` REINFORCE updates of
`num_aggregate` sampled cells, each cell's reward its accuracy on its own
validation batch plus `entropy_weight` times its entropy
(`nasjax.strategies.reinforce`). The derived cell is the best of
`derive.num_samples` cells sampled from the controller, scored on the same
validation batches.

AutoDL's settings (`configs/nas-benchmark/algos/ENAS.config` and
`scripts-search/NAS-Bench-201-algos/ENAS.sh`): controller Adam lr 1e-3,
betas (0, 0.999), eps 1e-3; entropy weight 1e-4, baseline decay 0.99, 50
updates of 20 cells per epoch; temperature 5, tanh constant 2.5; LSTM 32
units. Differences: one LSTM layer (AutoDL: 2), the controller's gradient
not clipped (AutoDL: norm 5), 20 cells per update scored on one batch
each, drawn in order from the validation half.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from nasjax import mixing as mixing_lib
from nasjax.strategies import controller as controller_lib
from nasjax.strategies import reinforce


@dataclasses.dataclass(frozen=True)
class Enas:
  """Attributes: `seq`, the space's decisions (`space.decisions()`: an
  `OpSequence` of one op per edge, or micro decisions; each with
  `mixing(arc)`); the rest, the controller's settings (see the module
  docstring)."""
  seq: object
  lstm_size: int = 32
  temperature: float = 5.0
  tanh_constant: float = 2.5
  learning_rate: float = 1e-3
  b1: float = 0.0
  eps: float = 1e-3
  adam_form: str = 'tf1'
  entropy_weight: float = 1e-4
  baseline_decay: float = 0.99
  train_steps: int = 50
  num_aggregate: int = 20
  learns_alpha = False
  samples_cells = True

  @property
  def config(self) -> controller_lib.ControllerConfig:
    return controller_lib.ControllerConfig(
        lstm_size=self.lstm_size, temperature=self.temperature or None,
        tanh_constant=self.tanh_constant or None)

  def init_alpha(self, key, shapes):
    del shapes  # self.seq's.
    return {'controller': controller_lib.init(key, self.seq, self.config),
            'baseline': jnp.zeros(())}

  def _tx(self):
    return reinforce.adam(self.learning_rate, b1=self.b1, eps=self.eps,
                          form=self.adam_form)

  def arch_tx(self) -> optax.GradientTransformation:
    """The controller's Adam, its state made from alpha's controller part
    (the baseline is not a gradient step's)."""
    tx = self._tx()
    return optax.GradientTransformation(
        lambda alpha: tx.init(alpha['controller']), tx.update)

  def sample(self, alpha, key, n: int):
    """n arcs from the controller, stacked ([n, ...]; `space.from_decisions`
    of one is its architecture)."""
    one = lambda k: controller_lib.sample(alpha['controller'], k,
                                          space=self.seq,
                                          config=self.config).arc
    return jax.vmap(one)(jax.random.split(key, n))

  def most_likely(self, alpha):
    """The greedy arc."""
    return controller_lib.most_likely(alpha['controller'], space=self.seq,
                                      config=self.config).arc

  def arc_mixing(self, arc) -> dict[str, mixing_lib.Mixing]:
    """The mixing of one arc (the space's decisions say how)."""
    return self.seq.mixing(arc)

  def mixing(self, alpha, key, progress):
    del progress
    return self.arc_mixing(jax.lax.stop_gradient(self.sample(alpha, key,
                                                             1)[0]))

  def update(self, alpha, opt_state, key, reward):
    """One REINFORCE update: `num_aggregate` arcs sampled, `reward(arcs, k)`
    the [num_aggregate] task rewards of the stacked arcs. Returns (alpha,
    opt_state, metrics)."""
    k_sample, k_reward = jax.random.split(key)
    arcs = jax.lax.stop_gradient(self.sample(alpha, k_sample,
                                             self.num_aggregate))
    scores = reward(arcs, k_reward)
    score = lambda p, a: controller_lib.log_prob(p, a, space=self.seq,
                                                 config=self.config)
    params, opt_state, baseline, metrics = reinforce.step(
        alpha['controller'], opt_state, alpha['baseline'], arcs, scores,
        score=score, tx=self._tx(), entropy_weight=self.entropy_weight,
        decay=self.baseline_decay)
    return ({'controller': params, 'baseline': baseline}, opt_state,
            metrics)

