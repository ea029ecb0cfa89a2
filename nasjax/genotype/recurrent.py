"""Recurrent cell genotypes: what a recurrent search hands to retraining.

A `RecurrentGenotype` lists, for nodes 1.., the (activation, predecessor)
pair of each node (node 0 is the fixed highway layer over x_t and h_{t-1}),
and the nodes whose mean is the cell's output. The notation is the one of
docs and `../reference`: `s1=sigmoid(s0); s2=relu(s1); ...; concat=[1..8]`.

Derivation (`from_alpha`) follows the reference: per node, the predecessor
whose strongest non-'none' weight is largest, then that edge's strongest
non-'none' activation.
"""

import dataclasses
import re
from typing import Sequence

import numpy as np

from nasjax.genotype.cell import GenotypeError
from nasjax.search_spaces import darts_rnn


@dataclasses.dataclass(frozen=True)
class RecurrentGenotype:
  recurrent: tuple[tuple[str, int], ...]
  concat: tuple[int, ...]

  def __post_init__(self):
    if not self.recurrent:
      raise GenotypeError('A recurrent genotype needs at least one node.')
    for n, pair in enumerate(self.recurrent, start=1):
      if (not isinstance(pair, tuple) or len(pair) != 2 or
          pair[0] not in darts_rnn.ACTIVATIONS or
          not isinstance(pair[1], int) or isinstance(pair[1], bool)):
        raise GenotypeError(
            f'node {n}: expected (activation, predecessor) with an activation '
            f'in {darts_rnn.ACTIVATIONS}, got {pair!r}.')
      if not 0 <= pair[1] < n:
        raise GenotypeError(f'node {n} cannot read node {pair[1]}; valid '
                            f'predecessors are 0..{n - 1}.')
    if not self.concat or any(not 0 <= c <= self.steps for c in self.concat):
      raise GenotypeError(f'concat {list(self.concat)} must name nodes in '
                          f'0..{self.steps}.')

  @property
  def steps(self) -> int:
    return len(self.recurrent)

  def to_dict(self) -> dict:
    return {'recurrent': [list(p) for p in self.recurrent],
            'concat': list(self.concat)}

  def __str__(self) -> str:
    nodes = '; '.join(f's{n}={act}(s{pred})'
                      for n, (act, pred) in enumerate(self.recurrent, 1))
    c = list(self.concat)
    concat = (f'[{c[0]}..{c[-1]}]' if len(c) > 2 and
              c == list(range(c[0], c[-1] + 1)) else str(c).replace(' ', ''))
    return f'{nodes}; concat={concat}'


def make(recurrent: Sequence, concat: Sequence[int]) -> RecurrentGenotype:
  """From lists (JSON): [[act, pred], ...] and [nodes]."""
  try:
    pairs = tuple((str(a), int(p)) for a, p in recurrent)
    return RecurrentGenotype(pairs, tuple(int(c) for c in concat))
  except (TypeError, ValueError) as e:
    if isinstance(e, GenotypeError):
      raise
    raise GenotypeError(f'Malformed recurrent genotype {recurrent!r}, '
                        f'{concat!r}: {e}.') from None


def from_dict(d: dict) -> RecurrentGenotype:
  if set(d) != {'recurrent', 'concat'}:
    raise GenotypeError(f"A recurrent genotype has keys 'recurrent' and "
                        f"'concat'; got {sorted(d)}.")
  return make(d['recurrent'], d['concat'])


_NODE = re.compile(r'^s(\d+)=(\w+)\(s(\d+)\)$')


def from_notation(text: str) -> RecurrentGenotype:
  """Parses `str(genotype)`."""
  parts = [p.strip() for p in text.strip().split(';') if p.strip()]
  if not parts or not parts[-1].startswith('concat='):
    raise GenotypeError(f'{text!r}: expected "s1=act(s0); ...; concat=[..]".')
  pairs = []
  for n, part in enumerate(parts[:-1], 1):
    m = _NODE.match(part.replace(' ', ''))
    if not m or int(m.group(1)) != n:
      raise GenotypeError(f'{part!r}: expected s{n}=activation(sJ).')
    pairs.append((m.group(2), int(m.group(3))))
  spec = parts[-1][len('concat='):].strip().strip('[]')
  if '..' in spec:
    lo, hi = spec.split('..')
    concat = range(int(lo), int(hi) + 1)
  else:
    concat = [int(c) for c in spec.split(',')]
  return make(pairs, concat)


def from_alpha(alpha: np.ndarray, space: darts_rnn.DartsRnnSpace,
               ) -> RecurrentGenotype:
  """The reference's rule on softmax(alpha) [num_edges, num_primitives]."""
  alpha = np.asarray(alpha, np.float64)
  if alpha.shape != (space.num_edges, len(space.primitives)):
    raise GenotypeError(f'alpha has shape {alpha.shape}; the space needs '
                        f'{(space.num_edges, len(space.primitives))}.')
  w = np.exp(alpha - alpha.max(-1, keepdims=True))
  w = w / w.sum(-1, keepdims=True)
  pairs = []
  for node in range(1, space.steps + 1):
    rows = w[space.offset(node):space.offset(node) + node, 1:]  # no 'none'
    pred = int(np.argmax(rows.max(-1)))
    pairs.append((space.primitives[1 + int(np.argmax(rows[pred]))], pred))
  return RecurrentGenotype(tuple(pairs), tuple(range(1, space.steps + 1)))


def random_genotype(rng: np.random.Generator, steps: int = 8,
                    activations: Sequence[str] = darts_rnn.ACTIVATIONS
                    ) -> RecurrentGenotype:
  """Uniform over the space: each node a random predecessor and activation."""
  pairs = tuple((str(activations[rng.integers(len(activations))]),
                 int(rng.integers(n))) for n in range(1, steps + 1))
  return RecurrentGenotype(pairs, tuple(range(1, steps + 1)))


# Published cells (the DARTS code's rnn/genotypes.py; ENAS_RNN is the ENAS
# paper's cell as the DARTS code writes it: 11 nodes, a concat of 6).
DARTS_V1_RNN = from_notation(
    's1=relu(s0); s2=relu(s1); s3=tanh(s2); s4=relu(s3); s5=relu(s4); '
    's6=identity(s1); s7=relu(s5); s8=relu(s1); concat=[1..8]')
DARTS_V2_RNN = from_notation(
    's1=sigmoid(s0); s2=relu(s1); s3=relu(s1); s4=identity(s1); '
    's5=tanh(s2); s6=sigmoid(s5); s7=tanh(s3); s8=relu(s5); concat=[1..8]')
ENAS_RNN = from_notation(
    's1=tanh(s0); s2=tanh(s1); s3=relu(s1); s4=tanh(s3); s5=tanh(s3); '
    's6=relu(s3); s7=relu(s4); s8=relu(s7); s9=relu(s8); s10=relu(s8); '
    's11=relu(s8); concat=[2,5,6,9,10,11]')
RECURRENT_ZOO = {'DARTS_V1_RNN': DARTS_V1_RNN, 'DARTS_V2_RNN': DARTS_V2_RNN,
                 'ENAS_RNN': ENAS_RNN}
