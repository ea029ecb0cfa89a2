"""The DARTS convolutional cell space (Liu et al., 2019, section 2.1).

A cell has two input nodes (the outputs of the two previous cells) and `steps`
intermediate nodes. Intermediate node i may take any earlier node j < i + 2 as
input, so the space has 2 + 3 + 4 + 5 = 14 edges for 4 steps; the cell's output
concatenates the intermediate nodes. Each edge chooses one op of `primitives`.
There are two cell types, 'normal' and 'reduce' (stride 2 on edges leaving the
inputs), each with its own choices. Edges are ordered node by node and, within
a node, by input index, as alpha rows are in the reference code.

Synopsis:

  space = DartsCellSpace()
  space.num_edges          # 14
  space.alpha_shapes()     # {'normal': (14, 8), 'reduce': (14, 8)}
  space.edges()[3]         # (1, 1): node 1 (state 3) reads state 1
"""

import dataclasses
import functools

from nasjax.search_spaces.base import Choice

PRIMITIVES = ('none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect',
              'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5')
CELL_TYPES = ('normal', 'reduce')


@dataclasses.dataclass(frozen=True)
class DartsCellSpace:
  """The cell space. Immutable and hashable, so it can be a static argument.

  Attributes:
    primitives: op names, in alpha-column order; 'none' must come first if
      present (genotype derivation excludes it).
    steps: number of intermediate nodes.
    num_inputs: number of input nodes (2 in DARTS).
  """
  primitives: tuple[str, ...] = PRIMITIVES
  steps: int = 4
  num_inputs: int = 2

  def __post_init__(self):
    from nasjax import ops  # Local: keep this module free of Flax at import.
    for p in self.primitives:
      ops.get(p)
    if len(set(self.primitives)) != len(self.primitives):
      raise ValueError(f'Duplicate primitives: {self.primitives}.')
    if self.steps < 1:
      raise ValueError(f'steps must be >= 1, got {self.steps}.')

  @functools.cached_property
  def _edges(self) -> tuple[tuple[int, int], ...]:
    return tuple((i, j)
                 for i in range(self.steps)
                 for j in range(self.num_inputs + i))

  def edges(self) -> tuple[tuple[int, int], ...]:
    """(node, input state) for every edge, in alpha-row order."""
    return self._edges

  @property
  def num_edges(self) -> int:
    return len(self._edges)

  @property
  def num_ops(self) -> int:
    return len(self.primitives)

  def edge_index(self, node: int, state: int) -> int:
    """Alpha row of the edge from `state` into intermediate `node`."""
    offset = sum(self.num_inputs + n for n in range(node))
    if not 0 <= state < self.num_inputs + node:
      raise ValueError(f'Node {node} has no input {state}.')
    return offset + state

  def out_edges(self, state: int) -> tuple[tuple[int, int], ...]:
    """(node, alpha row) of the edges leaving `state`, by increasing node."""
    return tuple((i, self.edge_index(i, state))
                 for i in range(max(0, state - self.num_inputs + 1), self.steps))

  def alpha_shapes(self) -> dict[str, tuple[int, int]]:
    return {t: (self.num_edges, self.num_ops) for t in CELL_TYPES}

  def choices(self) -> tuple[Choice, ...]:
    """One op choice per edge and cell type, e.g. 'normal/node0/input1'."""
    return tuple(
        Choice(f'{t}/node{i}/input{j}', self.primitives)
        for t in CELL_TYPES for i, j in self._edges)

  @property
  def concat(self) -> tuple[int, ...]:
    """States concatenated into the cell output: the intermediate nodes."""
    return tuple(range(self.num_inputs, self.num_inputs + self.steps))
