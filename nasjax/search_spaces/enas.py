"""The ENAS convolutional search spaces (Pham et al., 2018) as data.

Micro (cells): B new nodes per cell; node i (0-based) picks two inputs among
the i + 2 earlier states (the two cell inputs first) and one op for each; the
node is the sum of the two; the unused states are concatenated. A normal
and a reduction cell are chosen independently. An arc is the reference's
token list: per cell, per node `index_1, op_1, index_2, op_2` (4B tokens),
normal cell first; here an int array [2, 4B].

Macro (whole network): L layers; layer i picks one of 6 ops and any subset
of the layers before it as skip inputs. The reference's arc is, per layer,
`op, skip_0 .. skip_{i-1}` (L(L+1)/2 tokens); here `{'ops': [L], 'skips':
[L, L]}` with skips[i, j] = 1 if layer i reads layer j (j < i; 0 above the
diagonal), which has a static shape, and `to_tokens` / `from_tokens` convert.

Both spaces also enumerate their decisions as `Choice`s (the currency of
`search_spaces`), so one description drives the controller, a uniform
sampler and the exporters. `num_architectures` is exact (a Python int):

* macro, L = 12: 6^12 * 2^66 = 160,618,186,625,454,535,808,756,219,904
  (about 1.6e29), the paper's figure;
* micro, B = 5: (prod_i ((i + 2) * 5)^2)^2 = (5^10 * 720^2)^2, about
  2.6e25 token sequences. A node's two (input, op) pairs are summed, so a
  pair of pairs in either order is the same node: unordered, (prod_i
  C(5(i + 2) + 1, 2))^2, about 4.4e22 distinct pairs of cells. The paper's
  "(5 x (B - 2)!)^4 = 1.3e11 with B = 7" is neither: it is 600^4, i.e. per
  cell and per input slot one op choice (5, not 5^5) times 1 x 2 x ... x 5
  input choices (node i offered i + 1 states, not i + 2), squared for the
  two slots and again for the two cells.
"""

import dataclasses
import math
from typing import Any

import numpy as np

from nasjax.search_spaces.base import Choice

MICRO_OPS = ('sep_conv_3x3', 'sep_conv_5x5', 'avg_pool_3x3', 'max_pool_3x3',
             'identity')
MACRO_OPS = ('conv_3x3', 'sep_conv_3x3', 'conv_5x5', 'sep_conv_5x5',
             'avg_pool_3x3', 'max_pool_3x3')
CELLS = ('normal', 'reduce')


@dataclasses.dataclass(frozen=True)
class MicroSpace:
  """ENAS cells: `num_nodes` new nodes, each two (input, op) pairs."""
  controller_kind = 'micro'  # Which ENAS controller samples it.
  num_nodes: int = 5
  ops: tuple[str, ...] = MICRO_OPS

  @property
  def arc_shape(self) -> tuple[int, int]:
    return (2, 4 * self.num_nodes)

  def choices(self) -> tuple[Choice, ...]:
    """In the reference's sampling order: per node index_1, index_2, op_1,
    op_2 (its arcs interleave them: index_1, op_1, index_2, op_2)."""
    out = []
    for cell in CELLS:
      for i in range(self.num_nodes):
        for s in (1, 2):
          out.append(Choice(f'{cell}/node{i}/input{s}', tuple(range(i + 2))))
        for s in (1, 2):
          out.append(Choice(f'{cell}/node{i}/op{s}', self.ops))
    return tuple(out)

  def num_architectures(self, distinct: bool = False) -> int:
    """Token sequences (default), or distinct cells when `distinct` (a node's
    two pairs unordered)."""
    per_cell = 1
    for i in range(self.num_nodes):
      pairs = (i + 2) * len(self.ops)
      per_cell *= math.comb(pairs + 1, 2) if distinct else pairs ** 2
    return per_cell ** 2

  def check(self, arc) -> np.ndarray:
    """`arc` as an int array [2, 4B], or a ValueError saying what is wrong."""
    a = np.asarray(arc)
    if a.shape != self.arc_shape:
      a = a.reshape(-1)
      if a.size != 2 * 4 * self.num_nodes:
        raise ValueError(f'A micro arc of {self.num_nodes} nodes has '
                         f'{8 * self.num_nodes} tokens, got {a.size}.')
      a = a.reshape(self.arc_shape)
    for c, cell in enumerate(CELLS):
      for i in range(self.num_nodes):
        idx1, op1, idx2, op2 = a[c, 4 * i:4 * i + 4]
        for idx in (idx1, idx2):
          if not 0 <= idx < i + 2:
            raise ValueError(f'{cell} node {i}: input {idx} is not one of the '
                             f'{i + 2} earlier states.')
        for op in (op1, op2):
          if not 0 <= op < len(self.ops):
            raise ValueError(f'{cell} node {i}: op {op} is not in 0..'
                             f'{len(self.ops) - 1}.')
    return a.astype(np.int32)

  def random_arc(self, rng: np.random.Generator) -> np.ndarray:
    a = np.zeros(self.arc_shape, np.int32)
    for c in range(2):
      for i in range(self.num_nodes):
        a[c, 4 * i + 0] = rng.integers(i + 2)
        a[c, 4 * i + 2] = rng.integers(i + 2)
        a[c, 4 * i + 1] = rng.integers(len(self.ops))
        a[c, 4 * i + 3] = rng.integers(len(self.ops))
    return a

  def loose_ends(self, cell_arc) -> list[int]:
    """States that no node reads, the cell's two inputs (0, 1) included as
    the reference includes them: the ones the cell concatenates."""
    a = np.asarray(cell_arc)
    used = {int(a[4 * i]) for i in range(self.num_nodes)}
    used |= {int(a[4 * i + 2]) for i in range(self.num_nodes)}
    return [s for s in range(self.num_nodes + 2) if s not in used]

  def to_tokens(self, arc) -> np.ndarray:
    return np.asarray(arc).reshape(-1).astype(np.int32)

  def from_tokens(self, tokens) -> np.ndarray:
    return self.check(tokens)

  def from_genotype(self, g) -> np.ndarray:
    """The arc of a genotype in DARTS notation whose ops are this space's
    (skip_connect as identity), two pairs per node, `num_nodes` nodes: what
    DARTS derives on this space (`darts_search.py:enas_micro`). Its concat
    is not read (an ENAS cell concatenates its loose ends)."""
    names = [('skip_connect' if op == 'identity' else op) for op in self.ops]
    a = np.zeros(self.arc_shape, np.int32)
    for c, pairs in enumerate((g.normal, g.reduce)):
      if len(pairs) != 2 * self.num_nodes:
        raise ValueError(f'An ENAS micro cell of {self.num_nodes} nodes has '
                         f'{2 * self.num_nodes} pairs, got {len(pairs)}.')
      for k, (op, j) in enumerate(pairs):
        if op not in names:
          raise ValueError(f'Op {op!r} is not one of the ENAS micro ops '
                           f'{names}.')
        a[c, 2 * k], a[c, 2 * k + 1] = j, names.index(op)
    return self.check(a)

  def to_genotype(self, arc):
    """The arc in DARTS notation (`genotype.Genotype`): per node (op, input)
    twice, identity as skip_connect, the loose ends as concat. Only the
    notation: an ENAS cell's wiring (input calibration, the 1x1 after the
    concatenation) is not the DARTS cell's."""
    from nasjax import genotype  # pylint: disable=g-import-not-at-top
    a = self.check(arc)
    names = [('skip_connect' if op == 'identity' else op) for op in self.ops]
    cells = []
    for c in range(2):
      pairs = []
      for i in range(self.num_nodes):
        idx1, op1, idx2, op2 = (int(t) for t in a[c, 4 * i:4 * i + 4])
        pairs += [(names[op1], idx1), (names[op2], idx2)]
      cells += [pairs, self.loose_ends(a[c])]
    return genotype.make(*cells)


@dataclasses.dataclass(frozen=True)
class MacroSpace:
  """ENAS whole networks: `num_layers` layers, an op and skips each."""
  controller_kind = 'macro'  # Which ENAS controller samples it.
  num_layers: int = 12
  ops: tuple[str, ...] = MACRO_OPS

  def choices(self) -> tuple[Choice, ...]:
    out = []
    for i in range(self.num_layers):
      out.append(Choice(f'layer{i}/op', self.ops))
      for j in range(i):
        out.append(Choice(f'layer{i}/skip{j}', (0, 1)))
    return tuple(out)

  def num_architectures(self) -> int:
    n = self.num_layers
    return len(self.ops) ** n * 2 ** (n * (n - 1) // 2)

  @property
  def num_tokens(self) -> int:
    return self.num_layers * (self.num_layers + 1) // 2

  def to_tokens(self, arc) -> np.ndarray:
    """The reference's flat arc: per layer `op, skip_0 .. skip_{i-1}`."""
    ops, skips = np.asarray(arc['ops']), np.asarray(arc['skips'])
    out = []
    for i in range(self.num_layers):
      out.append(int(ops[i]))
      out.extend(int(s) for s in skips[i, :i])
    return np.asarray(out, np.int32)

  def from_tokens(self, tokens) -> dict[str, np.ndarray]:
    t = np.asarray(tokens).reshape(-1)
    if t.size != self.num_tokens:
      raise ValueError(f'A macro arc of {self.num_layers} layers has '
                       f'{self.num_tokens} tokens, got {t.size}.')
    ops = np.zeros(self.num_layers, np.int32)
    skips = np.zeros((self.num_layers, self.num_layers), np.int32)
    k = 0
    for i in range(self.num_layers):
      ops[i] = t[k]
      skips[i, :i] = t[k + 1:k + 1 + i]
      k += 1 + i
    return self.check({'ops': ops, 'skips': skips})

  def check(self, arc) -> dict[str, np.ndarray]:
    ops, skips = np.asarray(arc['ops']), np.asarray(arc['skips'])
    n = self.num_layers
    if ops.shape != (n,) or skips.shape != (n, n):
      raise ValueError(f'A macro arc of {n} layers has ops [{n}] and skips '
                       f'[{n}, {n}], got {ops.shape} and {skips.shape}.')
    if ops.min() < 0 or ops.max() >= len(self.ops):
      raise ValueError(f'Macro ops must lie in 0..{len(self.ops) - 1}.')
    if not np.isin(skips, (0, 1)).all() or np.triu(skips).any():
      raise ValueError('Macro skips must be 0/1, with skips[i, j] = 0 for '
                       'j >= i.')
    return {'ops': ops.astype(np.int32), 'skips': skips.astype(np.int32)}

  def random_arc(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
    ops = rng.integers(len(self.ops), size=self.num_layers).astype(np.int32)
    skips = np.tril(rng.integers(2, size=(self.num_layers,) * 2), -1)
    return {'ops': ops, 'skips': skips.astype(np.int32)}


# The corrected reference's activation order (enas_lm `_select_function`),
# so that its published arcs read the same here. The TF code orders them
# tanh, relu, identity, sigmoid and samples only the first two.
RECURRENT_OPS = ('tanh', 'relu', 'sigmoid', 'identity')
OUTPUTS = ('loose_ends', 'all')


@dataclasses.dataclass(frozen=True)
class RecurrentSpace:
  """ENAS recurrent cells: node 0 is the fixed highway layer over [x_t,
  h_{t-1}] (tanh); each of the `num_nodes` later nodes i = 1..N reads one
  earlier node j < i through its own weights and applies one activation.
  An arc is the corrected reference's token list, per node `prev, func`
  (2N tokens); here an int array [N, 2].

  `output` is part of what an arc means: 'loose_ends' (the paper: the mean
  of the nodes no node reads) or 'all' (the corrected reference code: the
  mean of nodes 1..N).
  """
  controller_kind = 'recurrent'  # Which ENAS controller samples it.
  num_nodes: int = 8
  ops: tuple[str, ...] = RECURRENT_OPS
  output: str = 'loose_ends'

  def __post_init__(self):
    if self.output not in OUTPUTS:
      raise ValueError(f'output must be one of {OUTPUTS}, got '
                       f'{self.output!r}.')
    if self.num_nodes < 1:
      raise ValueError(f'num_nodes must be >= 1, got {self.num_nodes}.')

  @property
  def arc_shape(self) -> tuple[int, int]:
    return (self.num_nodes, 2)

  @property
  def num_edges(self) -> int:
    """(node, predecessor) pairs: each has a weight matrix per op."""
    return self.num_nodes * (self.num_nodes + 1) // 2

  def offset(self, node: int) -> int:
    """Index of edge (node, 0) for node >= 1 (node i has i predecessors)."""
    return node * (node - 1) // 2

  def choices(self) -> tuple[Choice, ...]:
    out = []
    for i in range(1, self.num_nodes + 1):
      out.append(Choice(f'node{i}/input', tuple(range(i))))
      out.append(Choice(f'node{i}/op', self.ops))
    return tuple(out)

  def num_architectures(self) -> int:
    """N! * |ops|^N (the paper's 4^N x N!)."""
    return math.factorial(self.num_nodes) * len(self.ops) ** self.num_nodes

  def check(self, arc) -> np.ndarray:
    a = np.asarray(arc)
    if a.shape != self.arc_shape:
      if a.size != 2 * self.num_nodes:
        raise ValueError(f'A recurrent arc of {self.num_nodes} nodes has '
                         f'{2 * self.num_nodes} tokens, got {a.size}.')
      a = a.reshape(self.arc_shape)
    for i in range(1, self.num_nodes + 1):
      prev, op = (int(t) for t in a[i - 1])
      if not 0 <= prev < i:
        raise ValueError(f'node {i}: input {prev} is not one of the {i} '
                         'earlier nodes.')
      if not 0 <= op < len(self.ops):
        raise ValueError(f'node {i}: op {op} is not in 0..'
                         f'{len(self.ops) - 1}.')
    return a.astype(np.int32)

  def random_arc(self, rng: np.random.Generator) -> np.ndarray:
    return np.asarray([[rng.integers(i), rng.integers(len(self.ops))]
                       for i in range(1, self.num_nodes + 1)], np.int32)

  def loose_ends(self, arc) -> list[int]:
    """Nodes 1..N that no node reads (node 0 is always read, by node 1)."""
    a = self.check(arc)
    used = {int(p) for p in a[:, 0]}
    return [n for n in range(1, self.num_nodes + 1) if n not in used]

  def concat(self, arc) -> list[int]:
    """The nodes whose mean is the cell's output."""
    if self.output == 'all':
      return list(range(1, self.num_nodes + 1))
    return self.loose_ends(arc)

  def to_tokens(self, arc) -> np.ndarray:
    return self.check(arc).reshape(-1)

  def from_tokens(self, tokens) -> np.ndarray:
    return self.check(tokens)

  def to_genotype(self, arc):
    """The cell as a `RecurrentGenotype`: what the language model retrains
    (the discrete cell computes the same function: one weight matrix per
    node, the output the mean of `concat`)."""
    from nasjax.genotype import recurrent  # pylint: disable=g-import-not-at-top
    a = self.check(arc)
    return recurrent.make([(self.ops[op], int(p)) for p, op in a],
                          self.concat(a))


def space_of(name: str, size: int | None = None, output: str | None = None):
  """'micro' (size: nodes per cell), 'macro' (size: layers) or 'recurrent'
  (size: nodes after node 0; output: 'loose_ends' or 'all')."""
  if name == 'micro':
    return MicroSpace() if size is None else MicroSpace(num_nodes=size)
  if name == 'macro':
    return MacroSpace() if size is None else MacroSpace(num_layers=size)
  if name == 'recurrent':
    kw = {} if size is None else {'num_nodes': size}
    return RecurrentSpace(**kw, output=output or 'loose_ends')
  raise ValueError(f"Unknown ENAS space {name!r}; valid: 'micro', 'macro', "
                   "'recurrent'.")


@dataclasses.dataclass(frozen=True, eq=False)
class EnasArc:
  """An ENAS architecture as data: its space and its (checked) arc, the
  counterpart of a DARTS `Genotype` (what a search finds and a final network
  is built from)."""
  space: 'MicroSpace | MacroSpace | RecurrentSpace'
  arc: Any

  def __post_init__(self):
    object.__setattr__(self, 'arc', self.space.check(self.arc))

  @property
  def kind(self) -> str:
    if isinstance(self.space, RecurrentSpace):
      return 'recurrent'
    return 'micro' if isinstance(self.space, MicroSpace) else 'macro'

  def to_dict(self) -> dict:
    return to_dict(self.space, self.arc)

  def __str__(self) -> str:
    return self.to_dict()['arc']

  def __eq__(self, other) -> bool:
    return isinstance(other, EnasArc) and self.to_dict() == other.to_dict()


def arc_from_dict(d: dict) -> EnasArc:
  return EnasArc(*from_dict(d))


def to_dict(space, arc) -> dict:
  """JSON-able: the space, its size, the reference's arc string, and the
  arc's structured form."""
  if isinstance(space, MicroSpace):
    a = space.check(arc)
    return {'space': 'micro', 'num_nodes': space.num_nodes,
            'arc': to_string(a), 'normal': a[0].tolist(),
            'reduce': a[1].tolist()}
  if isinstance(space, RecurrentSpace):
    a = space.check(arc)
    return {'space': 'recurrent', 'num_nodes': space.num_nodes,
            'output': space.output, 'arc': to_string(a),
            'cell': str(space.to_genotype(a))}
  a = space.check(arc)
  return {'space': 'macro', 'num_layers': space.num_layers,
          'arc': to_string(space.to_tokens(a)), 'ops': a['ops'].tolist(),
          'skips': a['skips'].tolist()}


def from_dict(d: dict):
  """(space, arc) from `to_dict`'s form (the arc string is authoritative)."""
  size = d.get('num_layers') if d.get('space') == 'macro' else d.get(
      'num_nodes')
  space = space_of(d.get('space'), size, d.get('output'))
  return space, space.from_tokens(from_string(d['arc']))


def write_files(space, arc, prefix: str) -> None:
  """`<prefix>.json`, `<prefix>.txt` (the arc string) and pictures: for a
  micro arc the two cells (`<prefix>_normal.svg`, `<prefix>_reduce.svg`,
  drawn in DARTS notation), for a macro arc the network and for a recurrent
  arc the cell (`<prefix>.svg`)."""
  import json  # pylint: disable=g-import-not-at-top
  from nasjax import genotype  # pylint: disable=g-import-not-at-top
  d = to_dict(space, arc)
  with open(prefix + '.json', 'w') as f:
    json.dump(d, f, indent=1)
  with open(prefix + '.txt', 'w') as f:
    f.write(d['arc'] + '\n')
  if isinstance(space, MicroSpace):
    genotype.write_svg(space.to_genotype(arc), prefix)
    return
  if isinstance(space, RecurrentSpace):
    g = space.to_genotype(arc)
    with open(prefix + '.svg', 'w') as f:
      f.write(genotype.recurrent_svg(g.recurrent, g.concat))
    return
  a = space.check(arc)
  d = space.num_layers // 3
  with open(prefix + '.svg', 'w') as f:
    f.write(genotype.network_svg(
        [space.ops[o] for o in a['ops']], a['skips'].tolist(),
        (d - 1, 2 * d - 1), f'ENAS macro network, {space.num_layers} layers'))


def to_string(tokens) -> str:
  """The reference's arc string: tokens separated by spaces."""
  return ' '.join(str(int(t)) for t in np.asarray(tokens).reshape(-1))


def from_string(text: str) -> np.ndarray:
  try:
    return np.asarray([int(t) for t in text.split()], np.int32)
  except ValueError:
    raise ValueError(f'An arc string is integers separated by spaces, got '
                     f'{text[:60]!r}.') from None


# The published arcs (the reference's scripts/cifar10_{micro,macro}_final.sh).
ENAS_MICRO = ('0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1 '
              '1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1')
ENAS_MACRO = ' '.join((
    '0', '3 0', '0 1 0', '2 0 0 1', '2 0 0 0 0', '3 1 1 0 1 0',
    '2 0 0 0 0 0 1', '2 0 1 1 0 1 1 1', '1 0 1 1 1 0 1 0 1',
    '0 0 0 0 0 0 0 0 0 0', '2 0 0 0 0 0 1 0 0 0 0',
    '0 1 0 0 1 1 0 0 0 0 1 1', '2 0 1 0 0 0 0 0 1 0 1 1 0',
    '1 0 0 1 0 0 0 1 1 1 0 1 0 1', '0 1 1 0 1 0 1 0 0 0 0 0 1 0 0',
    '2 0 0 1 0 0 0 0 0 0 0 1 0 1 0 1', '2 0 1 0 0 0 1 0 0 1 1 1 1 0 0 1 0',
    '2 0 0 0 0 1 0 1 0 1 0 0 1 0 1 0 0 1',
    '3 0 1 1 0 1 0 0 0 0 0 1 0 1 0 1 0 0 0',
    '3 0 1 1 0 0 0 0 0 0 0 0 0 1 1 0 0 0 0 1',
    '0 1 0 0 1 0 1 1 0 0 0 1 0 0 0 0 0 1 1 0 0',
    '3 0 1 0 1 1 0 0 1 0 1 1 0 1 1 0 1 0 0 1 0 0',
    '0 1 0 1 0 1 0 0 0 0 0 0 0 0 1 0 1 0 0 1 0 0 0',
    '0 1 1 0 0 0 1 1 1 0 1 0 0 0 1 0 1 0 0 1 1 0 0 0'))


# The corrected reference's published PTB cell (enas_lm/README.md), whose
# output is the mean of all nodes. The same code writes the DARTS cell as
# '0 2 1 1 1 1 1 3 2 0 5 2 3 0 5 1' (DARTS_V2_RNN).
ENAS_RNN_LM = '0 2 1 0 2 1 2 2 4 0 5 0 3 2 6 2'


PUBLISHED = ('ENAS_MICRO', 'ENAS_MACRO', 'ENAS_RNN_LM')


def published(name: str):
  """(space, arc) of a published ENAS arc: 'ENAS_MICRO', 'ENAS_MACRO' or
  'ENAS_RNN_LM'."""
  if name == 'ENAS_RNN_LM':
    space = RecurrentSpace(output='all')
    return space, space.from_tokens(from_string(ENAS_RNN_LM))
  if name == 'ENAS_MICRO':
    space = MicroSpace()
    return space, space.check(from_string(ENAS_MICRO))
  if name == 'ENAS_MACRO':
    space = MacroSpace(num_layers=24)
    return space, space.from_tokens(from_string(ENAS_MACRO))
  raise ValueError(f'Unknown ENAS arc {name!r}; valid: {PUBLISHED}.')
