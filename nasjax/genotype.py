"""Genotypes: a discrete DARTS cell pair, as data.

A `Genotype` is what a search hands to retraining. It round-trips through JSON
and through the papers' notation,

  Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
           reduce=[('max_pool_3x3', 0), ...], reduce_concat=range(2, 6))

which is parsed with `ast` (never `eval`). Each cell is a list of (op, input)
pairs, two per intermediate node: node i (state i + 2) sums the two ops
applied to the given earlier states (0 and 1 are the cell inputs).

Derivation from alpha (the paper's rule, `Network.genotype` in the reference):
per intermediate node keep the two incoming edges whose strongest non-'none'
softmax weight is largest (ties keep the lower input index), and on each the
argmax op excluding 'none' (the first maximum wins). Pairs are listed strongest
edge first.

Synopsis:

  g = from_alpha(state.alpha, space)
  g == from_json(to_json(g)) == from_notation(to_notation(g))
  write_svg(g, 'genotype.svg')
"""

import ast
import dataclasses
import json
import os
from typing import Mapping, Sequence

import numpy as np

from nasjax import errors
from nasjax import ops
from nasjax.search_spaces import darts_cell
from nasjax.search_spaces import enas as enas_space

Pair = tuple[str, int]
_FIELDS = ('normal', 'normal_concat', 'reduce', 'reduce_concat')


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


# ---------------------------------------------------------------- derivation


def derive_cell(weights: np.ndarray, space: darts_cell.DartsCellSpace,
                top_k: int = 2) -> tuple[Pair, ...]:
  """Discrete cell from softmax(alpha) weights [E, K] of one cell type."""
  weights = np.asarray(weights, np.float64)
  if weights.shape != (space.num_edges, space.num_ops):
    raise GenotypeError(f'alpha weights have shape {weights.shape}; the space '
                        f'needs {(space.num_edges, space.num_ops)}.')
  usable = [k for k, p in enumerate(space.primitives) if p != 'none']
  if not usable:
    raise GenotypeError("The space has no op other than 'none'.")
  pairs = []
  for node in range(space.steps):
    inputs = range(space.num_inputs + node)
    rows = [weights[space.edge_index(node, j), usable] for j in inputs]
    strength = [r.max() for r in rows]
    # Stable sort on the negated strength: ties keep the lower input index.
    kept = sorted(inputs, key=lambda j: -strength[j])[:top_k]
    for j in kept:
      pairs.append((space.primitives[usable[int(np.argmax(rows[j]))]], j))
  return tuple(pairs)


def random_cell(space: darts_cell.DartsCellSpace, rng: np.random.Generator,
                top_k: int = 2) -> tuple[Pair, ...]:
  """A uniformly random discrete cell of the kind `derive_cell` returns.

  Per node: `top_k` distinct inputs, uniform among the earlier states; on
  each, an op uniform among the space's ops other than 'none'.
  """
  usable = [p for p in space.primitives if p != 'none']
  pairs = []
  for node in range(space.steps):
    inputs = rng.choice(space.num_inputs + node,
                        size=min(top_k, space.num_inputs + node),
                        replace=False)
    pairs.extend((usable[rng.integers(len(usable))], int(j)) for j in inputs)
  return tuple(pairs)


def random_genotype(space: darts_cell.DartsCellSpace,
                    rng: np.random.Generator) -> Genotype:
  """A random genotype from the space a search over `space` derives from."""
  return Genotype(random_cell(space, rng), space.concat,
                  random_cell(space, rng), space.concat)

def softmax(x) -> np.ndarray:
  """Row-wise softmax in float64 (derivation and the search history)."""
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def from_alpha(alpha: Mapping[str, np.ndarray],
               space: darts_cell.DartsCellSpace) -> Genotype:
  """The paper's derivation: top-2 edges per node, argmax non-'none' op."""
  concat = space.concat
  return Genotype(derive_cell(softmax(alpha['normal']), space), concat,
                  derive_cell(softmax(alpha['reduce']), space), concat)


# ---------------------------------------------------------------- JSON


def to_dict(g: 'Genotype | enas_space.EnasArc') -> dict:
  """JSON-able form of a DARTS genotype or an ENAS arc (`EnasArc.to_dict`)."""
  if isinstance(g, enas_space.EnasArc):
    return g.to_dict()
  return {'normal': [list(p) for p in g.normal],
          'normal_concat': list(g.normal_concat),
          'reduce': [list(p) for p in g.reduce],
          'reduce_concat': list(g.reduce_concat)}


def from_dict(d: Mapping) -> 'Genotype | enas_space.EnasArc':
  """`to_dict`'s inverse: an ENAS arc if `d` names its space, else a DARTS
  genotype."""
  if not isinstance(d, Mapping):
    raise GenotypeError(f'A genotype must be a JSON object, got '
                        f'{type(d).__name__}.')
  if 'space' in d:
    try:
      return enas_space.arc_from_dict(d)
    except (KeyError, TypeError, ValueError) as e:
      raise GenotypeError(f'Malformed ENAS arc: {e}') from None
  missing = [f for f in _FIELDS if f not in d]
  extra = [f for f in d if f not in _FIELDS]
  if missing or extra:
    raise GenotypeError(f'Genotype fields: missing {missing}, unexpected '
                        f'{extra}; expected exactly {list(_FIELDS)}.')
  return make(**{f: d[f] for f in _FIELDS})


def to_json(g: Genotype) -> str:
  return json.dumps(to_dict(g))


def from_json(text: str) -> 'Genotype | enas_space.EnasArc':
  try:
    d = json.loads(text)
  except json.JSONDecodeError as e:
    raise GenotypeError(f'Malformed genotype JSON: {e}.') from None
  return from_dict(d)


# ---------------------------------------------------------------- notation


def to_notation(g: Genotype) -> str:
  """The reference code's `Genotype(...)` repr."""
  cell = lambda pairs: '[' + ', '.join(f'({op!r}, {i})' for op, i in pairs) + ']'
  return (f'Genotype(normal={cell(g.normal)}, '
          f'normal_concat={list(g.normal_concat)}, '
          f'reduce={cell(g.reduce)}, reduce_concat={list(g.reduce_concat)})')


def _literal(node: ast.AST, field: str):
  # `range(a, b)` is how the reference writes concat lists.
  if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and
      node.func.id == 'range' and not node.keywords):
    args = [_literal(a, field) for a in node.args]
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
      raise GenotypeError(f'{field}: bad range(...) arguments.')
    return list(range(*args))
  try:
    return ast.literal_eval(node)
  except ValueError:
    raise GenotypeError(f'{field}: only literals and range(...) are allowed, '
                        f'got {ast.unparse(node)!r}.') from None


def from_notation(text: str) -> Genotype:
  """Parses `Genotype(normal=[...], normal_concat=..., reduce=[...], ...)`."""
  try:
    tree = ast.parse(text.strip(), mode='eval')
  except SyntaxError as e:
    raise GenotypeError(f'Malformed genotype notation: {e.msg} at column '
                        f'{e.offset}.') from None
  call = tree.body
  if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and
          call.func.id == 'Genotype'):
    raise GenotypeError("Genotype notation must be a call 'Genotype(...)'.")
  if call.args:
    values = [_literal(a, f) for a, f in zip(call.args, _FIELDS)]
    if len(call.args) != 4:
      raise GenotypeError(f'Genotype(...) takes 4 fields, got '
                          f'{len(call.args)} positional.')
    return make(*values)
  return from_dict({kw.arg: _literal(kw.value, kw.arg) for kw in call.keywords})


def parse(text: str) -> 'Genotype | enas_space.EnasArc':
  """JSON or notation, whichever `text` is."""
  if text.lstrip()[:1] in ('{', '['):
    return from_json(text)
  return from_notation(text)


# The published DARTS cells, in the reference's notation (cnn/genotypes.py).
DARTS_V1 = from_notation(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = from_notation(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


# Published cells from other searches, as the reference writes them
# (quark0/darts cnn/genotypes.py). They have 5 nodes, and
# AmoebaNet uses 'conv_7x1_1x7' and 'sep_conv_7x7', outside the DARTS space.
NASNET = make(
    normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0),
            ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0),
            ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), ('sep_conv_3x3', 1),
            ('skip_connect', 1)],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1),
            ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0),
            ('skip_connect', 3), ('avg_pool_3x3', 2), ('sep_conv_3x3', 2),
            ('max_pool_3x3', 1)],
    reduce_concat=[4, 5, 6])
AMOEBANET = make(
    normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0),
            ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3),
            ('sep_conv_3x3', 1), ('skip_connect', 1), ('skip_connect', 0),
            ('avg_pool_3x3', 1)],
    normal_concat=[4, 5, 6],
    reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0),
            ('sep_conv_7x7', 2), ('sep_conv_7x7', 0), ('avg_pool_3x3', 1),
            ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('conv_7x1_1x7', 0),
            ('sep_conv_3x3', 5)],
    reduce_concat=[3, 4, 6])
# The ENAS micro cell (melodyguan/enas scripts/cifar10_micro_final.sh, decoded
# in docs/reference_figures.md 6) in the DARTS cell: identity ->
# skip_connect, the output concatenates the loose ends (nodes no other node
# reads). Differences from ENAS's own child: ENAS reorders the cell inputs,
# standardises input 1 with ReLU-1x1-BN only, and reduces with its own
# factorised path; here the DARTS cell's preprocessing and strides apply.
ENAS = make(
    normal=[('avg_pool_3x3', 0), ('sep_conv_3x3', 0), ('skip_connect', 0),
            ('sep_conv_5x5', 0), ('skip_connect', 0), ('sep_conv_5x5', 1),
            ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('avg_pool_3x3', 0),
            ('sep_conv_5x5', 1)],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('max_pool_3x3', 0),
            ('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 3),
            ('sep_conv_3x3', 1), ('skip_connect', 0), ('max_pool_3x3', 0),
            ('sep_conv_5x5', 1)],
    reduce_concat=[2, 4, 5, 6])

# Published genotypes by name. 'DARTS' is DARTS_V2, as in the reference.
ZOO: dict[str, Genotype] = {
    'DARTS_V1': DARTS_V1, 'DARTS_V2': DARTS_V2, 'DARTS': DARTS_V2,
    'NASNet': NASNET, 'AmoebaNet': AMOEBANET, 'ENAS': ENAS,
}


def get(name: str) -> 'Genotype | enas_space.EnasArc':
  """A published architecture by name: a DARTS-space genotype (`ZOO`) or an
  ENAS arc ('ENAS_MICRO', 'ENAS_MACRO'); unknown names list the valid
  ones."""
  if name in enas_space.PUBLISHED:
    return enas_space.EnasArc(*enas_space.published(name))
  try:
    return ZOO[name]
  except KeyError:
    raise GenotypeError(
        f'Unknown genotype {name!r}. Published genotypes and arcs: '
        f'{sorted(ZOO) + list(enas_space.PUBLISHED)}; or give a path to a '
        'genotype or arc JSON file, or a genotype notation file.') from None


def load(spec: str) -> 'Genotype | enas_space.EnasArc':
  """A published name, a file (JSON or notation), or notation/JSON text
  itself. DARTS genotypes and ENAS arcs (their JSON, `EnasArc.to_dict`)."""
  spec = spec.strip()
  if spec in ZOO or spec in enas_space.PUBLISHED:
    return get(spec)
  if spec.startswith(('Genotype(', '{')):
    return parse(spec)
  if os.path.exists(spec):
    with open(spec) as f:
      text = f.read()
    try:
      return parse(text)
    except GenotypeError as e:
      raise GenotypeError(f'{spec}: {e}') from None
  return get(spec)


# ---------------------------------------------------------------- pictures


# One colour per op, shared by the cell pictures and `nasjax.plot`.
OP_COLORS = {'none': '#000000', 'max_pool_3x3': '#1f77b4',
             'avg_pool_3x3': '#17becf', 'skip_connect': '#7f7f7f',
             'sep_conv_3x3': '#d62728', 'sep_conv_5x5': '#ff7f0e',
             'dil_conv_3x3': '#2ca02c', 'dil_conv_5x5': '#9467bd',
             'sep_conv_7x7': '#8c564b', 'conv_7x1_1x7': '#e377c2'}


@dataclasses.dataclass(frozen=True)
class Arc:
  """One drawn edge: a quadratic curve from (x1, y1) to (x2, y2)."""
  x1: float
  y1: float
  cx: float
  cy: float
  x2: float
  y2: float
  label: str            # the op ('' for the edges into the output)
  color: str
  label_xy: tuple[float, float] | None

  def points(self, n: int = 64) -> np.ndarray:
    """`n` points along the curve, [n, 2]."""
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.array(p, float) for p in
                  ((self.x1, self.y1), (self.cx, self.cy), (self.x2, self.y2)))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


@dataclasses.dataclass(frozen=True)
class CellLayout:
  boxes: dict             # state (or 'out') -> (x, y, w, h)
  arcs: tuple[Arc, ...]
  width: int
  height: int
  char_width: float = 6.2  # of the 11 px label font
  font_size: float = 11.0

  def label_boxes(self) -> list[tuple[float, float, float, float]]:
    """(x, y, w, h) of every label, as drawn (centred on `label_xy`)."""
    out = []
    for a in self.arcs:
      if a.label_xy is not None:
        w = len(a.label) * self.char_width
        x, y = a.label_xy
        out.append((x - w / 2, y - self.font_size, w, self.font_size + 3))
    return out


def cell_layout(pairs: Sequence[Pair], concat: Sequence[int]) -> CellLayout:
  """Where a cell's picture puts its states, edges and labels.

  The states sit on one horizontal line in topological order (c_{k-2},
  c_{k-1}, the intermediate nodes, then the output c_k). Every edge is an
  arc above the line whose height grows with its span, so an arc never
  crosses a state's box and arcs of different spans stack; each op's name
  sits at the top of its arc. When a node takes the same input twice, the
  second arc goes below the line. The arcs into the output run below the
  line, unlabelled.
  """
  steps = len(pairs) // 2
  box_w, box_h, gap, rise = 84, 28, 132, 34
  states = list(range(steps + 2)) + ['out']
  position = {st: k for k, st in enumerate(states)}
  span_max = max(position[n // 2 + 2] - position[src]
                 for n, (_, src) in enumerate(pairs))
  top = 30 + rise * span_max + 10
  boxes = {st: (20 + k * gap, top, box_w, box_h) for k, st in enumerate(states)}
  center = {st: boxes[st][0] + box_w / 2 for st in states}
  order = {st: k for k, st in enumerate(states)}

  def arc(src, dst, label, color, below, fan):
    span = order[dst] - order[src]
    h = rise * span + (0 if label else rise / 2)
    # Ends spread over the box's width so arcs into one box stay apart.
    x1 = center[src] + fan[0]
    x2 = center[dst] + fan[1]
    y = top + box_h if below else top
    apex = y + h if below else y - h
    cy = 2 * apex - y  # The curve's highest point is `apex`.
    label_xy = None
    if label:
      label_xy = ((x1 + x2) / 2, apex + (14 if below else -4))
    return Arc(x1, y, (x1 + x2) / 2, cy, x2, y, label, color, label_xy)

  arcs, seen = [], set()
  for n, (op, src) in enumerate(pairs):
    dst = n // 2 + 2
    below = (src, dst) in seen
    seen.add((src, dst))
    offset = (dst - src) * 3.0
    arcs.append(arc(src, dst, op, OP_COLORS.get(op, '#000000'), below,
                    (offset, -box_w / 2 + 8 + 6 * (src % 8))))
  for c in concat:
    arcs.append(arc(c, 'out', '', '#bbbbbb', True,
                    (0.0, -box_w / 2 + 8 + 6 * (c % 8))))
  width = int(boxes['out'][0] + box_w + 20)
  bottom = max([top + box_h] + [a.label_xy[1] + 6 for a in arcs
                                if a.label_xy] +
               [max(a.y1, a.cy / 2 + a.y1 / 2) for a in arcs])
  return CellLayout(boxes, tuple(arcs), width, int(bottom + 20))


def cell_svg(pairs: Sequence[Pair], concat: Sequence[int], title: str) -> str:
  """An SVG drawing of one cell (`cell_layout`)."""
  lay = cell_layout(pairs, concat)
  parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" '
           f'height="{lay.height}" font-family="sans-serif" '
           f'font-size="{lay.font_size:.0f}">',
           f'<text x="10" y="18" font-size="14">{title}</text>',
           '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" '
           'refY="3" orient="auto"><path d="M0,0 L7,3 L0,6 z"/></marker></defs>']
  for a in lay.arcs:
    parts.append(f'<path d="M{a.x1:.1f},{a.y1:.1f} Q{a.cx:.1f},{a.cy:.1f} '
                 f'{a.x2:.1f},{a.y2:.1f}" fill="none" stroke="{a.color}" '
                 'stroke-width="1.5" marker-end="url(#a)"/>')
  names = {0: 'c_{k-2}', 1: 'c_{k-1}', 'out': 'c_k (concat)'}
  for st, (x, y, w, h) in lay.boxes.items():
    fill = ('#cfe2f3' if st in (0, 1) else '#d9ead3' if st == 'out'
            else '#fff2cc')
    parts.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" '
                 f'fill="{fill}" stroke="#333"/>')
    parts.append(f'<text x="{x + w / 2}" y="{y + 18}" text-anchor="middle">'
                 f'{names[st] if st in names else f"node {st - 2}"}</text>')
  for a in lay.arcs:  # Labels last, with a white halo, over the curves.
    if a.label_xy is not None:
      x, y = a.label_xy
      for paint in (' stroke="white" stroke-width="4"', ''):  # Halo, text.
        parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" '
                     f'fill="{a.color}"{paint}>{a.label}</text>')
  parts.append('</svg>')
  return '\n'.join(parts)


def write_svg(g: Genotype, path_prefix: str) -> list[str]:
  """Writes `<prefix>_normal.svg` and `<prefix>_reduce.svg`; returns paths."""
  paths = []
  for cell in ('normal', 'reduce'):
    path = f'{path_prefix}_{cell}.svg'
    with open(path, 'w') as f:
      f.write(cell_svg(getattr(g, cell), getattr(g, cell + '_concat'),
                       f'{cell} cell'))
    paths.append(path)
  return paths


def write_files(g: 'Genotype | enas_space.EnasArc', prefix: str) -> None:
  """`<prefix>.json`, `<prefix>.txt` (notation, or an ENAS arc string) and
  the pictures (`search_spaces.enas.write_files` for ENAS arcs)."""
  if isinstance(g, enas_space.EnasArc):
    enas_space.write_files(g.space, g.arc, prefix)
    return
  with open(prefix + '.json', 'w') as f:
    f.write(to_json(g) + '\n')
  with open(prefix + '.txt', 'w') as f:
    f.write(to_notation(g) + '\n')
  write_svg(g, prefix)
