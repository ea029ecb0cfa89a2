"""Pictures of a run: softmax(alpha) over a search, cells, training curves.

Every function returns a matplotlib `Figure` (shown inline when it is the
last expression of a notebook cell; `save(fig, path)` writes a PNG) or, for
cells, an SVG that notebooks display. No pyplot state is used, so figures
made in a loop are freed.

  fig = plot.alpha_history(result)   # which op wins where, and when
  plot.cell(result.genotype, 'normal')       # the derived cell
  plot.curves(trained)               # losses and accuracies
  plot.recurrent_alpha(cell_search)  # a recurrent search's alpha
  plot.nb201_ops(nb201_search)       # NAS-Bench-201: op weights per edge
  plot.perplexity(lm)                # perplexities of a language model
  plot.hessian(search)               # the Hessian monitor's eigenvalues
"""

import numpy as np

from nasjax import genotype as genotype_lib
from nasjax.history import EpochRecord
from nasjax.search_spaces import darts_cell
from nasjax.search_spaces import enas as enas_space

CELLS = ('normal', 'reduce')
# One colour per DARTS op, shared by every picture (the cell SVGs too).
OP_COLORS = genotype_lib.OP_COLORS


def _figure(**kwargs):
  """A matplotlib Figure that notebooks display as a PNG by itself (no
  `%matplotlib inline` and no pyplot needed)."""
  import io  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  class _Figure(Figure):

    def _repr_png_(self):
      buf = io.BytesIO()
      self.savefig(buf, format='png', dpi=90)
      return buf.getvalue()

  return _Figure(**kwargs)


def _unpack(run, space=None):
  """(history, space) from a history list or a search / training result."""
  history = getattr(run, 'history', run)
  return list(history), space or getattr(run, 'space', None)


def infer_space(alpha: np.ndarray) -> darts_cell.DartsCellSpace:
  """The DARTS cell space of an [edges, ops] alpha (edges = 2 + 3 + ...)."""
  edges, ops = alpha.shape
  steps, total = 0, 0
  while total < edges:
    total += steps + 2
    steps += 1
  if total != edges:
    raise ValueError(f'{edges} edges is not a DARTS cell (2 + 3 + ...).')
  if ops != len(darts_cell.PRIMITIVES):
    raise ValueError(f'alpha has {ops} ops, not the 8 DARTS primitives: '
                     'pass the search space (result.space).')
  return darts_cell.DartsCellSpace(darts_cell.PRIMITIVES, steps=steps)


def _input_name(j: int) -> str:
  return {0: 'c_{k-2}', 1: 'c_{k-1}'}.get(j, f'node {j - 2}')


def _color(op: str, k: int) -> str:
  return OP_COLORS.get(op, f'C{k % 10}')


def alpha_history(history, space: darts_cell.DartsCellSpace | None = None):
  """softmax(alpha) of every edge over the epochs of a search.

  `history`: a `SearchResult` or its `.history` (then pass `space` unless it
  is the 8-op DARTS space).

  One small chart per edge, laid out as the cell is: a row per intermediate
  node (normal cell above, reduction cell below), a column per input of that
  node; in each chart one line per op, in the colours of the cell pictures.
  """
  history, space = _unpack(history, space)
  records = [r for r in history if r.alpha is not None]
  if not records:
    raise ValueError('The history has no alpha (is it a search history?).')
  space = space or infer_space(records[0].alpha['normal'])
  epochs = [r.epoch for r in records]
  rows, cols = 2 * space.steps, space.steps + 1
  fig = _figure(figsize=(2.2 * cols, 1.55 * rows + 0.9), layout='constrained')
  axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
  marker = 'o' if len(records) < 12 else None
  for c, cell in enumerate(CELLS):
    weights = np.stack([r.alpha[cell] for r in records])  # [T, E, K]
    for e, (i, j) in enumerate(space.edges()):
      ax = axes[c * space.steps + i, j]
      for k, op in enumerate(space.primitives):
        ax.plot(epochs, weights[:, e, k], color=_color(op, k), marker=marker,
                markersize=3, linewidth=1.2, label=op,
                linestyle=':' if op == 'none' else '-')
      ax.set_title(f'{cell}: node {i} <- {_input_name(j)}', fontsize=7)
      ax.tick_params(labelsize=6)
    for i in range(space.steps):
      for j in range(i + 2, cols):
        axes[c * space.steps + i, j].axis('off')
  from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
  for ax in axes[-1]:
    ax.set_xlabel('epoch', fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  for ax in axes[:, 0]:
    ax.set_ylabel('softmax(alpha)', fontsize=7)
  handles, labels = axes[0, 0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='outside upper center',
             ncol=min(len(labels), 8), fontsize=7, frameon=False)
  return fig


def alpha_matrix(record: EpochRecord,
                 space: darts_cell.DartsCellSpace | None = None):
  """softmax(alpha) of one epoch as two heat maps (edges x ops)."""
  space = space or infer_space(record.alpha['normal'])
  labels = [f'node {i} <- {_input_name(j)}' for i, j in space.edges()]
  fig = _figure(figsize=(10, 0.28 * len(labels) + 1.6), layout='constrained')
  axes = fig.subplots(1, 2, sharey=True)
  for ax, cell in zip(axes, CELLS):
    w = record.alpha[cell]
    im = ax.imshow(w, vmin=0, vmax=max(float(w.max()), 1e-6), cmap='viridis',
                   aspect='auto')
    ax.set_xticks(range(len(space.primitives)), space.primitives,
                  rotation=60, ha='right', fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title(f'{cell} cell, epoch {record.epoch}', fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
  return fig


def nb201_ops(run):
  """A NAS-Bench-201 search's op weights on each of the 6 edges over the
  epochs: softmax(alpha) (DARTS, GDAS) or, for ENAS, how often the
  controller's samples pick each op.

  `run`: a `nasjax.one_shot.OneShotResult` or its `.history`.
  """
  from nasjax.search_spaces.nb201 import encoding  # pylint: disable=g-import-not-at-top
  history, _ = _unpack(run)
  records = [r for r in history if r.alpha is not None and 'cell' in r.alpha]
  if not records:
    raise ValueError('The history has no NB201 op weights (a random '
                     'sampling search learns none).')
  epochs = [r.epoch for r in records]
  weights = np.stack([r.alpha['cell'] for r in records])  # [T, 6, 5]
  fig = _figure(figsize=(9, 4.2), layout='constrained')
  axes = fig.subplots(2, 3, sharex=True, sharey=True)
  marker = 'o' if len(records) < 12 else None
  for e, (i, j) in enumerate(encoding.EDGES):
    ax = axes.flat[e]
    for k, op in enumerate(encoding.OPS):
      ax.plot(epochs, weights[:, e, k], color=f'C{k}', marker=marker,
              markersize=3, linewidth=1.2, label=op,
              linestyle=':' if op == 'none' else '-')
    ax.set_title(f'node {i} <- node {j}', fontsize=8)
    ax.tick_params(labelsize=7)
  axes.flat[0].legend(fontsize=6)
  for ax in axes[1]:
    ax.set_xlabel('epoch', fontsize=7)
  return _integer_epochs(fig)


def curves(history):
  """Losses and accuracies per epoch: training metrics and any test ones.

  `history`: a `SearchResult`, a `TrainResult` or the `.history` of one.
  """
  history, _ = _unpack(history)
  if not history:
    raise ValueError('The history is empty.')
  epochs = [r.epoch for r in history]
  fig = _figure(figsize=(10, 3.5), layout='constrained')
  axes = fig.subplots(1, 2)
  for ax, kind in zip(axes, ('loss', 'accuracy')):
    keys = sorted({k for r in history for k in r.train if kind in k})
    for key in keys:
      ax.plot(epochs, [r.train.get(key, np.nan) for r in history],
              marker='o', markersize=3, label=key)
    tested = [(r.epoch, r.test[kind]) for r in history if r.test]
    if tested:
      ax.plot(*zip(*tested), marker='s', markersize=4, label=f'test_{kind}')
    ax.set_xlabel('epoch')
    ax.set_title(kind)
    ax.legend(fontsize=7)
  return _integer_epochs(fig)


def hessian(run, stop_epoch: int | None = None):
  """The Hessian monitor's eigenvalues per epoch (`nasjax.hessian`): the
  three largest and the smallest eigenvalue of the architecture loss's
  Hessian in alpha; a dashed line at the epoch an early stop returned to
  (default: the run's own, from its summary).

  `run`: a search result or its `.history`.
  """
  from nasjax import hessian as hessian_lib  # pylint: disable=g-import-not-at-top
  history, _ = _unpack(run)
  if stop_epoch is None:
    stop_epoch = (getattr(run, 'summary', None) or {}).get(
        'early_stop', {}).get('epoch')
  records = [r for r in history if hessian_lib.METRICS[0] in r.train]
  if not records:
    raise ValueError('The history has no Hessian eigenvalues (set '
                     'config.hessian.every_epochs to measure them).')
  epochs = [r.epoch for r in records]
  fig = _figure(figsize=(6, 3.5), layout='constrained')
  ax = fig.subplots()
  for k, name in enumerate(hessian_lib.METRICS):
    ax.plot(epochs, [r.train[name] for r in records], marker='o',
            markersize=3, color=f'C{k}', linewidth=2 if k == 0 else 1,
            label=name.replace('hessian_', '').replace('_', ' '))
  if stop_epoch is not None:
    ax.axvline(stop_epoch, color='k', linestyle='--', linewidth=1,
               label=f'early stop: epoch {stop_epoch}')
  ax.set_xlabel('epoch')
  ax.set_ylabel('eigenvalue of the Hessian in alpha')
  ax.legend(fontsize=7)
  return _integer_epochs(fig)


class _SVG:
  """An SVG string that notebooks display as a picture."""

  def __init__(self, text: str):
    self.data = text

  def _repr_svg_(self) -> str:
    return self.data

  def __str__(self) -> str:
    return self.data


def cell(genotype, which: str = 'normal') -> _SVG:
  """The picture of one cell of a genotype (`genotype_{which}.svg`), of a
  micro ENAS arc's cell in DARTS notation, or of a recurrent cell (a
  `RecurrentGenotype` or a recurrent ENAS arc; `which` unused)."""
  if isinstance(genotype, enas_space.EnasArc):
    if isinstance(genotype.space, enas_space.MacroSpace):
      raise ValueError('A macro ENAS arc is a network, not a cell.')
    genotype = genotype.space.to_genotype(genotype.arc)
  if isinstance(genotype, genotype_lib.RecurrentGenotype):
    return _SVG(genotype_lib.recurrent_svg(genotype.recurrent,
                                           genotype.concat))
  if which not in CELLS:
    raise ValueError(f'which must be one of {CELLS}, got {which!r}.')
  return _SVG(genotype_lib.cell_svg(getattr(genotype, which),
                                    getattr(genotype, which + '_concat'),
                                    f'{which} cell'))


def save(fig, path: str, dpi: int = 110) -> None:
  """Writes a figure (PNG, or any format matplotlib infers from `path`) or a
  cell picture (`cell`: an .svg path)."""
  if isinstance(fig, _SVG):
    if not path.endswith('.svg'):
      raise ValueError(f'A cell picture is an SVG; save it to a .svg path, '
                       f'not {path!r}.')
    with open(path, 'w') as f:
      f.write(fig.data)
    return
  fig.savefig(path, dpi=dpi)


def _integer_epochs(fig):
  """Whole-epoch ticks on every axis (a 1-epoch run gets one tick, not
  0.0, 0.2, ...). Epochs count from 0, as in the logs and files."""
  from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
  for ax in fig.axes:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  return fig


def controller(run):
  """An ENAS search's controller per epoch: mean reward and the EMA
  baseline, the entropy of the sampled arcs, the child's training accuracy
  and the best sampled arc's accuracy on the derive batches (recurrent: the
  best sampled cell's validation perplexity)."""
  history, _ = _unpack(run)
  epochs = [r.epoch for r in history]
  get = lambda k: [r.train.get(k, np.nan) for r in history]
  fig = _figure(figsize=(10, 3.2))
  ax = fig.add_subplot(1, 2, 1)
  ax.plot(epochs, get('controller/reward'), 'o-', label='reward (mean)')
  ax.plot(epochs, get('controller/baseline'), 's--', label='baseline')
  ax.set_xlabel('epoch')
  recurrent = any(r.arcs and 'perplexity' in r.arcs[0] for r in history)
  if recurrent:  # Perplexities: their own axis.
    ax.set_ylabel('reward = 80 / perplexity')
    ax.legend(fontsize=7, loc='upper left')
    ax = ax.twinx()
    ax.plot(epochs, get('valid_perplexity'), 'd-.', color='#d62728',
            label='best sampled cell: valid perplexity')
    ax.set_yscale('log')
    ax.legend(fontsize=7, loc='upper right')
  else:
    ax.plot(epochs, get('accuracy'), '^:', label='child train accuracy')
    best = [r.arcs[0]['accuracy'] if r.arcs else np.nan for r in history]
    ax.plot(epochs, best, 'd-.', label='best sampled arc')
    ax.legend(fontsize=7)
  ax = fig.add_subplot(1, 2, 2)
  ax.plot(epochs, get('controller/entropy'), 'o-', color='#9467bd')
  ax.set_xlabel('epoch')
  ax.set_ylabel('entropy of a sampled arc (nats)')
  ax.ticklabel_format(axis='y', useOffset=False)
  fig.tight_layout()
  return _integer_epochs(fig)


def arc_distribution(run, num_samples: int = 500, seed: int = 0):
  """How the trained controller samples: op frequencies per decision (micro:
  per cell, node and input slot; macro: per layer; recurrent: per node) and,
  for macro, the skip frequency of every (layer, earlier state) pair, for
  recurrent the input frequency of every (node, earlier node) pair. From `num_samples` arcs
  drawn from `run.state`'s controller."""
  import functools  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from nasjax.strategies import controller as controller_lib  # pylint: disable=g-import-not-at-top
  space = run.space
  cfg = run.controller_config
  fn = jax.jit(jax.vmap(functools.partial(controller_lib.sample, space=space,
                                          config=cfg), in_axes=(None, 0)))
  arcs = jax.device_get(fn(jax.device_get(run.state.controller.params),
                           jax.random.split(jax.random.key(seed),
                                            num_samples)).arc)
  fig = _figure(figsize=(11, 4))
  ops = len(space.ops)
  if isinstance(space, enas_space.RecurrentSpace):
    a = np.asarray(arcs)                                   # [n, N, 2]
    nodes = [f'node {i}' for i in range(1, space.num_nodes + 1)]
    ax = fig.add_subplot(1, 2, 1)
    _heat(ax, np.stack([np.bincount(a[:, i, 0], minlength=space.num_nodes)
                        for i in range(space.num_nodes)]) / num_samples,
          nodes, [f'{j}' for j in range(space.num_nodes)])
    ax.set_title('input frequency (row reads column)')
    ax = fig.add_subplot(1, 2, 2)
    _heat(ax, np.stack([np.bincount(a[:, i, 1], minlength=ops)
                        for i in range(space.num_nodes)]).T / num_samples,
          list(space.ops), nodes)
    ax.set_title('activation frequency per node')
  elif isinstance(space, enas_space.MicroSpace):
    a = np.asarray(arcs)                                   # [n, 2, 4B]
    rows, labels = [], []
    for c, cell in enumerate(CELLS):
      for i in range(space.num_nodes):
        for s in range(2):
          rows.append(np.bincount(a[:, c, 4 * i + 2 * s + 1], minlength=ops))
          labels.append(f'{cell} n{i} in{s + 1}')
    freq = np.asarray(rows) / num_samples
    ax = fig.add_subplot(1, 1, 1)
    _heat(ax, freq.T, list(space.ops), labels)
    ax.set_title(f'op frequencies over {num_samples} sampled arcs')
  else:
    o, sk = np.asarray(arcs['ops']), np.asarray(arcs['skips'])
    freq = np.stack([np.bincount(o[:, i], minlength=ops)
                     for i in range(space.num_layers)]) / num_samples
    ax = fig.add_subplot(1, 2, 1)
    _heat(ax, freq.T, list(space.ops),
          [f'L{i}' for i in range(space.num_layers)])
    ax.set_title('op frequency per layer')
    ax = fig.add_subplot(1, 2, 2)
    _heat(ax, sk.mean(0), [f'L{i}' for i in range(space.num_layers)],
          ['stem'] + [f'L{j}' for j in range(space.num_layers - 1)])
    ax.set_title('skip frequency (row reads column)')
  fig.tight_layout()
  return fig


def _heat(ax, values, row_labels, col_labels):
  im = ax.imshow(values, vmin=0, vmax=1, cmap='viridis', aspect='auto')
  ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
  ax.set_xticks(range(len(col_labels)), col_labels, fontsize=6, rotation=90)
  ax.figure.colorbar(im, ax=ax, fraction=0.03)


def recurrent_alpha(run):
  """A recurrent search: softmax(alpha) of every edge at the last epoch (a
  heat map, edges x activations) and the weight of the strongest non-'none'
  activation of every edge over the epochs."""
  history, space = _unpack(run)
  if not history or history[-1].alpha is None:
    raise ValueError('The history holds no alpha (not a search).')
  w = history[-1].alpha['recurrent']
  if space is None:
    from nasjax.search_spaces import darts_rnn  # pylint: disable=g-import-not-at-top
    steps = int((np.sqrt(8 * w.shape[0] + 1) - 1) / 2)
    space = darts_rnn.DartsRnnSpace(steps=steps)
  labels = [f'node {i} <- node {j}' for i, j in space.edges()]
  fig = _figure(figsize=(11, 0.22 * len(labels) + 1.8), layout='constrained')
  left, right = fig.subplots(1, 2, width_ratios=(1, 1.6))
  _heat(left, w, labels, list(space.primitives))
  left.set_title(f'softmax(alpha), epoch {history[-1].epoch}', fontsize=9)
  epochs = [r.epoch for r in history]
  for e, label in enumerate(labels):
    right.plot(epochs, [r.alpha['recurrent'][e, 1:].max() for r in history],
               linewidth=1, label=label)
  right.set_xlabel('epoch')
  right.set_title("strongest non-'none' weight per edge", fontsize=9)
  right.legend(fontsize=5, ncol=3, frameon=False)
  from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
  right.xaxis.set_major_locator(MaxNLocator(integer=True))
  return fig


def perplexity(run):
  """Perplexities per epoch of a recurrent search or a language-model
  training (training windows, validation split; averaged weights marked)."""
  history, _ = _unpack(run)
  if not history:
    raise ValueError('The history is empty.')
  fig = _figure(figsize=(6, 3.5), layout='constrained')
  ax = fig.subplots()
  epochs = [r.epoch for r in history]
  for key in ('train_perplexity', 'val_perplexity', 'valid_perplexity'):
    if any(key in r.train for r in history):
      ax.plot(epochs, [r.train.get(key, np.nan) for r in history],
              marker='o', markersize=3, label=key)
  averaged = [r.epoch for r in history if r.train.get('averaging')]
  if averaged:
    ax.axvspan(min(averaged) - 0.5, max(averaged) + 0.5, alpha=0.1,
               label='averaged weights')
  ax.set_yscale('log')
  ax.set_xlabel('epoch')
  ax.set_title('perplexity')
  ax.legend(fontsize=7)
  return _integer_epochs(fig)
