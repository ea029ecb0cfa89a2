"""Pictures: a cell as an SVG of its states and edges, and an ENAS macro
network as an SVG of its layers and skips."""

import dataclasses
from typing import Sequence

import numpy as np

from nasjax.genotype.cell import Genotype, Pair

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


def network_svg(ops: Sequence[str], skips, reductions: Sequence[int],
                title: str) -> str:
  """An SVG drawing of an ENAS macro network: the stem and the layers on one
  line, each layer's op in its box (coloured as in the cell pictures), the
  skip inputs as arcs above the line (skips[i][j] = 1: layer i reads state
  j of [stem, layer 0, ...]), and a dashed line after each reduction."""
  box_w, box_h, gap, rise = 92, 40, 112, 7
  n = len(ops)
  top = 40 + rise * (n + 1)
  x = lambda k: 20 + k * gap           # box k: 0 the stem, i + 1 layer i
  parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{x(n + 1)}" '
           f'height="{top + box_h + 40}" font-family="sans-serif" '
           'font-size="11">', f'<text x="10" y="18" font-size="14">{title}'
           '</text>']
  for i in range(n):
    for j in range(i):
      if skips[i][j]:
        x1, x2 = x(j) + box_w / 2 + 2 * (i % 5), x(i + 1) + 10 + 2 * (j % 5)
        apex = top - rise * (i + 1 - j)
        parts.append(f'<path d="M{x1:.1f},{top} Q{(x1 + x2) / 2:.1f},'
                     f'{2 * apex - top:.1f} {x2:.1f},{top}" fill="none" '
                     'stroke="#999" stroke-width="1"/>')
  for k in range(n + 1):
    op = 'stem' if k == 0 else ops[k - 1]
    fill = '#cfe2f3' if k == 0 else '#fff2cc'
    parts.append(f'<rect x="{x(k)}" y="{top}" width="{box_w}" '
                 f'height="{box_h}" rx="6" fill="{fill}" stroke="#333"/>')
    parts.append(f'<text x="{x(k) + box_w / 2}" y="{top + 16}" '
                 f'text-anchor="middle">{"stem" if k == 0 else f"layer {k - 1}"}'
                 '</text>')
    if k:
      parts.append(f'<text x="{x(k) + box_w / 2}" y="{top + 31}" '
                   f'text-anchor="middle" fill="{OP_COLORS.get(op, "#000")}">'
                   f'{op}</text>')
      parts.append(f'<line x1="{x(k) - gap + box_w}" y1="{top + box_h / 2}" '
                   f'x2="{x(k)}" y2="{top + box_h / 2}" stroke="#333"/>')
  for r in reductions:
    xr = x(r + 1) + box_w + (gap - box_w) / 2
    parts.append(f'<line x1="{xr}" y1="{top - 10}" x2="{xr}" '
                 f'y2="{top + box_h + 20}" stroke="#c00" '
                 'stroke-dasharray="4,3"/>')
    parts.append(f'<text x="{xr}" y="{top + box_h + 32}" text-anchor="middle"'
                 ' fill="#c00">reduce</text>')
  parts.append('</svg>')
  return '\n'.join(parts)


# Colours of the recurrent cell's activations.
ACT_COLORS = {'tanh': '#d62728', 'relu': '#1f77b4', 'sigmoid': '#2ca02c',
              'identity': '#7f7f7f'}


def recurrent_svg(recurrent: Sequence[Pair], concat: Sequence[int],
                  title: str = 'recurrent cell') -> str:
  """An SVG drawing of a recurrent cell: x_t and h_{t-1} into node 0, the
  nodes on one line, an arc from each node's predecessor labelled with its
  activation (above the line), and the averaged nodes into h_t (below)."""
  n = len(recurrent)
  span = max(k - pred for k, (_, pred) in enumerate(recurrent, start=1))
  step, w, h, top = 78, 56, 28, 50 + 7 * span
  xs = [20 + step * (k + 1) for k in range(n + 1)]
  out_x = xs[-1] + step
  width, height = out_x + w + 20, top + h + 90
  parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" font-family="sans-serif" font-size="11">',
           f'<text x="10" y="18" font-size="14">{title}</text>',
           '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" '
           'refY="3" orient="auto"><path d="M0,0 L7,3 L0,6 z"/></marker></defs>']
  boxes = [(20, 'x_t, h_t-1', '#cfe2f3')] + [
      (x, f'node {k}', '#fff2cc') for k, x in enumerate(xs)] + [
          (out_x, 'h_t (mean)', '#d9ead3')]
  cy = top + h / 2
  parts.append(f'<path d="M{20 + w},{cy} L{xs[0]},{cy}" stroke="#333" '
               'marker-end="url(#a)"/>')
  labels = []
  for k, (act, pred) in enumerate(recurrent, start=1):
    x1, x2 = xs[pred] + w / 2, xs[k] + w / 2
    peak = top - 12 - 14 * (k - pred)
    color = ACT_COLORS.get(act, '#000000')
    parts.append(f'<path d="M{x1},{top} Q{(x1 + x2) / 2},{peak} {x2},{top}" '
                 f'fill="none" stroke="{color}" stroke-width="1.5" '
                 'marker-end="url(#a)"/>')
    labels.append(((x1 + x2) / 2, (top + peak) / 2 + 2, act, color))
  for c in concat:
    x1, x2 = xs[c] + w / 2, out_x + w / 2
    parts.append(f'<path d="M{x1},{top + h} Q{(x1 + x2) / 2},'
                 f'{top + h + 60} {x2},{top + h}" fill="none" stroke="#999" '
                 'marker-end="url(#a)"/>')
  for x, name, fill in boxes:
    parts.append(f'<rect x="{x}" y="{top}" width="{w}" height="{h}" rx="6" '
                 f'fill="{fill}" stroke="#333"/>')
    parts.append(f'<text x="{x + w / 2}" y="{top + 18}" '
                 f'text-anchor="middle">{name}</text>')
  for x, y, act, color in labels:
    for paint in (' stroke="white" stroke-width="4"', ''):
      parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" '
                   f'fill="{color}"{paint}>{act}</text>')
  parts.append('</svg>')
  return '\n'.join(parts)
