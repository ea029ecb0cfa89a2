"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020).

  encoding   a cell as 6 op indices; the benchmark's cell strings
  networks   the weight-sharing supernet and a cell's discrete network
  table      a NAS-Bench-201 accuracy table looked up by cell
  SPACE      the space object the one-shot strategies search
             (`nasjax.mixing.OneShotSpace`)
"""

import dataclasses

import numpy as np

from nasjax import mixing as mixing_lib
from nasjax.search_spaces.nb201 import encoding


@dataclasses.dataclass(frozen=True)
class Nb201Space:
  """NAS-Bench-201 as a one-shot space: alpha is {'cell': [6, 5]}."""
  name: str = 'nb201'

  def alpha_shapes(self):
    return {'cell': (encoding.NUM_EDGES, encoding.NUM_OPS)}

  def supernet(self, num_classes: int, model_config):
    from nasjax.search_spaces.nb201 import networks  # Flax only when used.
    return networks.Supernet(
        num_classes, model_config.channels, model_config.cells_per_stage,
        model_config.get('unselected_weights', 'reference'))

  def from_alpha(self, alpha):
    return encoding.from_alpha(np.asarray(alpha['cell']))

  def random_arch(self, rng):
    return encoding.random_cell(rng)

  def arch_mixing(self, arch):
    """{'cell': the one-hot Mixing of the cell's ops}: each edge computes
    its op only."""
    return {'cell': mixing_lib.one_hot(np.asarray(encoding.check(arch),
                                                  np.int32), encoding.NUM_OPS)}

  def decisions(self) -> mixing_lib.OpSequence:
    """One op per edge (ENAS's controller, as AutoDL's NB201 ENAS)."""
    return mixing_lib.OpSequence.of(self.alpha_shapes())

  def from_decisions(self, arc):
    return encoding.check(tuple(int(i) for i in np.asarray(arc)))

  def to_string(self, arch):
    return encoding.to_string(arch)

  def from_string(self, text):
    return encoding.from_string(text)


SPACE = Nb201Space()
