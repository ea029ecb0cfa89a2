"""The DARTS recurrent cell space (Liu et al., 2019, section 2.1 and A.1.2).

Node 0 is computed from the input x_t and the previous hidden state h_{t-1}
(a fixed highway layer); intermediate node i = 1..steps may read any earlier
node j < i, so the space has 1 + 2 + ... + 8 = 36 edges for 8 steps. Each edge
chooses one activation of `primitives` ('none' first); the cell's output is
the mean of the intermediate nodes. Edges are ordered node by node and, within
a node, by predecessor, as the reference code orders alpha's rows.

Synopsis:

  space = DartsRnnSpace()
  space.num_edges          # 36
  space.alpha_shapes()     # {'recurrent': (36, 5)}
  space.edges()[3]         # (3, 0): node 3 reads node 0
"""

import dataclasses
import functools

PRIMITIVES = ('none', 'tanh', 'relu', 'sigmoid', 'identity')
ACTIVATIONS = PRIMITIVES[1:]
CELL = 'recurrent'


@dataclasses.dataclass(frozen=True)
class DartsRnnSpace:
  """The recurrent cell space. Immutable and hashable (a static argument).

  Attributes:
    primitives: activation names in alpha-column order, 'none' first.
    steps: number of intermediate nodes.
  """
  primitives: tuple[str, ...] = PRIMITIVES
  steps: int = 8

  def __post_init__(self):
    unknown = set(self.primitives) - set(PRIMITIVES)
    if unknown or not self.primitives or self.primitives[0] != 'none':
      raise ValueError(f'primitives {self.primitives}: must start with '
                       f"'none' and take names from {PRIMITIVES}.")
    if self.steps < 1:
      raise ValueError(f'steps must be >= 1, got {self.steps}.')

  @property
  def num_edges(self) -> int:
    return self.steps * (self.steps + 1) // 2

  @functools.cache
  def edges(self) -> tuple[tuple[int, int], ...]:
    """(node, predecessor) per alpha row."""
    return tuple((i, j) for i in range(1, self.steps + 1) for j in range(i))

  def offset(self, node: int) -> int:
    """The first alpha row of `node`'s incoming edges."""
    return (node - 1) * node // 2

  def alpha_shapes(self) -> dict[str, tuple[int, int]]:
    return {CELL: (self.num_edges, len(self.primitives))}
