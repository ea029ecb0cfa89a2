"""The DARTS-space genotype: a discrete cell pair, as data.

Each cell is a list of (op, input) pairs, two per intermediate node: node i
(state i + 2) sums the two ops applied to the given earlier states (0 and 1
are the cell inputs); `*_concat` lists the states the cell's output
concatenates. A `Genotype` checks itself when built (`make` builds one from
the lists JSON or the notation give).
"""

import dataclasses
from typing import Sequence

from nasjax import errors
from nasjax import ops

Pair = tuple[str, int]
FIELDS = ('normal', 'normal_concat', 'reduce', 'reduce_concat')


class GenotypeError(errors.UserError):
  """A genotype that is malformed or does not fit its space."""


@dataclasses.dataclass(frozen=True)
class Genotype:
  normal: tuple[Pair, ...]
  normal_concat: tuple[int, ...]
  reduce: tuple[Pair, ...]
  reduce_concat: tuple[int, ...]

  def __post_init__(self):
    for cell in ('normal', 'reduce'):
      pairs = getattr(self, cell)
      if len(pairs) % 2:
        raise GenotypeError(f'{cell}: needs two (op, input) pairs per node, '
                            f'got {len(pairs)} pairs.')
      for n, pair in enumerate(pairs):
        if (not isinstance(pair, tuple) or len(pair) != 2 or
            not isinstance(pair[0], str) or not isinstance(pair[1], int) or
            isinstance(pair[1], bool)):
          raise GenotypeError(f'{cell}[{n}]: expected (op_name, input_index), '
                              f'got {pair!r}.')
        op, src = pair
        if op not in ops.OPS:
          raise GenotypeError(f'{cell}[{n}]: unknown op {op!r}. Valid ops: '
                              f'{sorted(ops.OPS)}.')
        node = n // 2
        if not 0 <= src < node + 2:
          raise GenotypeError(f'{cell}[{n}]: node {node} (state {node + 2}) '
                              f'cannot read state {src}; valid inputs are '
                              f'0..{node + 1}.')
      concat = getattr(self, cell + '_concat')
      num_states = len(pairs) // 2 + 2
      if not concat or any(not 0 <= c < num_states for c in concat):
        raise GenotypeError(f'{cell}_concat {list(concat)} must name states '
                            f'in 0..{num_states - 1}.')

  @property
  def steps(self) -> int:
    return len(self.normal) // 2


def make(normal: Sequence[Sequence], normal_concat: Sequence[int],
         reduce: Sequence[Sequence], reduce_concat: Sequence[int]) -> Genotype:
  """Builds a Genotype from lists (as JSON or the notation give them)."""

  def pairs(cell, items):
    try:
      return tuple((p[0], p[1]) for p in items if len(p) == 2) if all(
          len(p) == 2 for p in items) else _bad_pairs(cell, items)
    except TypeError:
      return _bad_pairs(cell, items)

  def ints(cell, items):
    try:
      return tuple(int(c) for c in items)
    except (TypeError, ValueError):
      raise GenotypeError(f'{cell}: expected a list of ints, got '
                          f'{items!r}.') from None

  return Genotype(pairs('normal', normal), ints('normal_concat', normal_concat),
                  pairs('reduce', reduce), ints('reduce_concat', reduce_concat))


def _bad_pairs(cell, items):
  raise GenotypeError(f'{cell}: expected a list of (op_name, input_index) '
                      f'pairs, got {items!r}.')
