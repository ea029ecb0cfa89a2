"""NAS-Bench-201 cells as data: six op indices and the benchmark's strings.

The NAS-Bench-201 cell (Dong & Yang, ICLR 2020) is a DAG on 4 nodes: node 0
is the cell input, node i > 0 sums one op applied to every earlier node, and
node 3 is the output. Its 6 edges, in the benchmark's order (AutoDL's
`edge2index`, sorted 'i<-j' keys):

  edge:  0     1     2     3     4     5
  i<-j:  1<-0  2<-0  2<-1  3<-0  3<-1  3<-2

Each edge takes one of `OPS` (none, skip_connect, nor_conv_1x1, nor_conv_3x3,
avg_pool_3x3), so there are 5^6 = 15,625 cells. A cell here is a tuple of 6
op indices in edge order; the benchmark writes it as
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (node 1, node 2, node 3; `op~j`: the op
on the edge from node j). `enumeration_index` numbers cells in base 5 (edge 0
most significant); the benchmark's own index is in its table
(`nasjax.search_spaces.nb201.table`), not computable from the cell.

Synopsis:

  cell = from_string('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|'
                     'skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|')
  cell                  # (3, 3, 3, 1, 2, 3)
  to_string(cell) == the string above
"""

from typing import Sequence

import numpy as np

from nasjax import errors

OPS = ('none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3', 'avg_pool_3x3')
NUM_NODES = 4
EDGES = tuple((i, j) for i in range(1, NUM_NODES) for j in range(i))
NUM_EDGES = len(EDGES)   # 6
NUM_OPS = len(OPS)       # 5
NUM_CELLS = NUM_OPS ** NUM_EDGES  # 15,625

Cell = tuple[int, ...]


class Nb201Cell(tuple):
  """A cell read from the benchmark's string (`from_string`): a tuple of 6
  op indices that prints as that string, so that a file or flag holding
  one is retrained in the NB201 network (`nasjax.final`)."""

  def __str__(self):
    return to_string(self)


def check(cell: Sequence[int]) -> Cell:
  """`cell` as a tuple of 6 ints in [0, 5), or a `UserError` saying what
  is wrong."""
  try:
    cell = tuple(int(k) for k in cell)
  except (TypeError, ValueError):
    raise errors.UserError(f'An NB201 cell is 6 op indices, got {cell!r}.'
                           ) from None
  if len(cell) != NUM_EDGES or not all(0 <= k < NUM_OPS for k in cell):
    raise errors.UserError(
        f'An NB201 cell is {NUM_EDGES} op indices in [0, {NUM_OPS}), got '
        f'{cell!r}.')
  return cell


def to_string(cell: Sequence[int]) -> str:
  """The benchmark's string of `cell`."""
  cell = check(cell)
  nodes = []
  for i in range(1, NUM_NODES):
    nodes.append('|'.join(f'{OPS[cell[e]]}~{j}'
                          for e, (n, j) in enumerate(EDGES) if n == i))
  return '+'.join(f'|{n}|' for n in nodes)


def from_string(text: str) -> Cell:
  """The cell the benchmark writes as `text`; a `UserError` naming what is
  malformed otherwise."""
  text = str(text).strip()
  nodes = text.split('+')
  if len(nodes) != NUM_NODES - 1:
    raise errors.UserError(
        f'Malformed NB201 cell string {text!r}: expected {NUM_NODES - 1} '
        "nodes separated by '+', like "
        "'|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|'.")
  cell = []
  for i, node in enumerate(nodes, start=1):
    if not (node.startswith('|') and node.endswith('|')):
      raise errors.UserError(f'Malformed NB201 cell string {text!r}: node '
                             f'{i} ({node!r}) is not enclosed in |...|.')
    entries = node[1:-1].split('|')
    if len(entries) != i:
      raise errors.UserError(f'Malformed NB201 cell string {text!r}: node '
                             f'{i} has {len(entries)} inputs, not {i}.')
    for j, entry in enumerate(entries):
      op, _, src = entry.partition('~')
      if src != str(j):
        raise errors.UserError(
            f'Malformed NB201 cell string {text!r}: node {i} input {j} is '
            f'{entry!r}, expected "<op>~{j}".')
      if op not in OPS:
        raise errors.UserError(
            f'Unknown NB201 op {op!r} in {text!r}; the ops are {list(OPS)}.')
      cell.append(OPS.index(op))
  return Nb201Cell(cell)


def enumeration_index(cell: Sequence[int]) -> int:
  """`cell` in base 5, edge 0 most significant: 0 .. 15,624."""
  index = 0
  for k in check(cell):
    index = index * NUM_OPS + k
  return index


def from_enumeration_index(index: int) -> Cell:
  if not 0 <= int(index) < NUM_CELLS:
    raise errors.UserError(f'An NB201 enumeration index is in [0, '
                           f'{NUM_CELLS}), got {index}.')
  digits = []
  for _ in range(NUM_EDGES):
    index, k = divmod(int(index), NUM_OPS)
    digits.append(k)
  return tuple(reversed(digits))


def random_cell(rng: np.random.Generator) -> Cell:
  """A cell with each edge's op uniform (what random search samples)."""
  return tuple(int(k) for k in rng.integers(0, NUM_OPS, NUM_EDGES))


def all_cells() -> np.ndarray:
  """[15625, 6] int: every cell, in enumeration order."""
  idx = np.arange(NUM_CELLS)
  return np.stack([(idx // NUM_OPS ** (NUM_EDGES - 1 - e)) % NUM_OPS
                   for e in range(NUM_EDGES)], axis=1)


def from_alpha(alpha: np.ndarray) -> Cell:
  """The cell of the largest logit on every edge ([6, 5] logits; 'none'
  may win, as in the NB201 searches; ties go to the first op)."""
  alpha = np.asarray(alpha)
  if alpha.shape != (NUM_EDGES, NUM_OPS):
    raise ValueError(f'NB201 alpha is [{NUM_EDGES}, {NUM_OPS}], got '
                     f'{alpha.shape}.')
  return tuple(int(k) for k in np.argmax(alpha, axis=-1))
