"""The DARTS convolutional cell as a one-shot space (`nasjax.mixing`), so
that GDAS, random sampling and ENAS's controller search it through the
one-shot loop.

alpha is {'normal': [14, 8], 'reduce': [14, 8]}; the supernet is the DARTS
search network (`nasjax.darts.model.SearchNetwork`), which takes a
`Mixing` per cell type in place of alpha and then uses its weights as they
are. Under a hard mixing (GDAS, random sampling) it computes every op,
weighted by the one-hot weights: the value is the selected op's, and
GDAS's gradient reaches every op's weight (no conditionals, as the NB201
supernet's selected-op path has). An architecture is a DARTS `Genotype`:
derived from alpha by the DARTS rule (two strongest inputs per node, no
`none`), drawn uniformly as `genotype.random_genotype` draws it, and mixed
as rows of its ops' weights on its edges and zero rows on the others.

ENAS's controller decides per node two (input, op) pairs, as on ENAS's
micro space (`CellDecisions`); a node may read one input twice, through
two ops or one op twice, and its edge then carries both: the row's weight
is 1 on each of the two ops (2 on one op chosen twice), which is what the
discrete cell computes (the two pairs' outputs summed).
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from nasjax import mixing as mixing_lib
from nasjax.search_spaces import darts_cell
from nasjax.search_spaces import enas as enas_space


@dataclasses.dataclass(frozen=True)
class CellDecisions(enas_space.MicroSpace):
  """ENAS's micro decisions over a DARTS cell: per node of both cell types,
  two inputs and two of `ops` (the cell's primitives without `none`), in
  the micro arc's layout (int [2, 4 * num_nodes]: per node input_1, op_1,
  input_2, op_2; normal then reduce)."""
  cell: darts_cell.DartsCellSpace = darts_cell.DartsCellSpace()

  @classmethod
  def of(cls, cell: darts_cell.DartsCellSpace) -> 'CellDecisions':
    if cell.num_inputs != 2:
      raise ValueError('ENAS decisions need a cell of 2 inputs, got '
                       f'{cell.num_inputs}.')
    return cls(num_nodes=cell.steps,
               ops=tuple(p for p in cell.primitives if p != 'none'),
               cell=cell)

  def mixing(self, arc) -> dict[str, mixing_lib.Mixing]:
    """The mixing of an arc (traceable): each pair's op weight 1 on its
    edge, added up where a node reads one input twice."""
    tokens = jnp.asarray(arc).reshape(2, self.num_nodes, 4)
    offset = np.asarray([self.cell.edge_index(i, 0)
                         for i in range(self.num_nodes)])
    column = jnp.asarray([self.cell.primitives.index(op) for op in self.ops])
    shape = (self.cell.num_edges, self.cell.num_ops)
    out = {}
    for c, t in enumerate(enas_space.CELLS):
      tok = tokens[c]
      edges = jnp.concatenate([offset + tok[:, 0], offset + tok[:, 2]])
      ops = jnp.concatenate([column[tok[:, 1]], column[tok[:, 3]]])
      out[t] = mixing_lib.Mixing(jnp.zeros(shape).at[edges, ops].add(1.0))
    return out


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

  def arch_mixing(self, arch):
    """{cell type: Mixing([14, 8])}: on each edge the genotype uses, weight
    1 on its op (on both ops, or 2 on one, where a node reads the edge's
    input twice); zero rows on the others. The decisions' mixing of the
    genotype's arc."""
    d = self.decisions()
    return {t: mixing_lib.Mixing(np.asarray(m.weights))
            for t, m in d.mixing(d.from_genotype(arch)).items()}

  def decisions(self) -> CellDecisions:
    return CellDecisions.of(self.cell)

  def from_decisions(self, arc):
    """The genotype of a micro arc of `decisions()`."""
    from nasjax import genotype  # pylint: disable=g-import-not-at-top
    d = self.decisions()
    tokens = np.asarray(arc).reshape(2, d.num_nodes, 4)
    normal, reduce = (tuple((d.ops[n[o]], int(n[i])) for n in cell
                            for i, o in ((0, 1), (2, 3))) for cell in tokens)
    return genotype.Genotype(normal, self.cell.concat, reduce,
                             self.cell.concat)

  def to_string(self, arch):
    from nasjax import genotype  # pylint: disable=g-import-not-at-top
    return genotype.to_notation(arch)

  def from_string(self, text):
    from nasjax import genotype  # pylint: disable=g-import-not-at-top
    return genotype.from_notation(text)


SPACE = DartsCellOneShot()
