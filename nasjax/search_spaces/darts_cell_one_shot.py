"""The DARTS convolutional cell as a one-shot space (`nasjax.mixing`), so
that GDAS and random sampling search it through the one-shot loop.

alpha is {'normal': [14, 8], 'reduce': [14, 8]}; the supernet is the DARTS
search network (`nasjax.darts.model.SearchNetwork`), which takes a
`Mixing` per cell type in place of alpha and then uses its weights as they
are. Under a hard mixing (GDAS, random sampling) it computes every op,
weighted by the one-hot weights: the value is the selected op's, and
GDAS's gradient reaches every op's weight (no conditionals, as the NB201
supernet's selected-op path has). An architecture is a DARTS `Genotype`:
derived from alpha by the DARTS rule (two strongest inputs per node, no
`none`), drawn uniformly as `genotype.random_genotype` draws it, and mixed
as one-hot rows on its edges and `none` on the others.
"""

import dataclasses

import numpy as np

from nasjax.search_spaces import darts_cell


@dataclasses.dataclass(frozen=True)
class DartsCellOneShot:
  """Attributes: cell, the DARTS cell space (its primitives and steps)."""
  cell: darts_cell.DartsCellSpace = darts_cell.DartsCellSpace()
  name: str = 'darts_cell'

  def alpha_shapes(self):
    return self.cell.alpha_shapes()

  def supernet(self, num_classes: int, model_config):
    from nasjax.darts import model  # Flax only when used.
    return model.SearchNetwork(self.cell, channels=model_config.channels,
                               num_classes=num_classes,
                               layers=model_config.layers)

  def from_alpha(self, alpha):
    from nasjax import genotype  # pylint: disable=g-import-not-at-top
    return genotype.from_alpha(
        {t: np.asarray(a) for t, a in alpha.items()}, self.cell)

  def random_arch(self, rng):
    from nasjax import genotype  # pylint: disable=g-import-not-at-top
    return genotype.random_genotype(self.cell, rng)

  def arch_index(self, arch):
    """{cell type: [14]}: each edge's op in the genotype, `none` (0) on the
    edges it does not use."""
    if self.cell.primitives[0] != 'none':
      raise ValueError("Mixing a genotype needs 'none' as the first op.")
    out = {}
    for t, pairs in (('normal', arch.normal), ('reduce', arch.reduce)):
      index = np.zeros(self.cell.num_edges, np.int32)
      for k, (op, j) in enumerate(pairs):
        index[self.cell.edge_index(k // 2, j)] = self.cell.primitives.index(op)
      out[t] = index
    return out

  def to_string(self, arch):
    from nasjax import genotype  # pylint: disable=g-import-not-at-top
    return genotype.to_notation(arch)

  def from_string(self, text):
    from nasjax import genotype  # pylint: disable=g-import-not-at-top
    return genotype.from_notation(text)


SPACE = DartsCellOneShot()
