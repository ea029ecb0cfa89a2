"""What a run tells the person watching it: a progress bar or log lines.

`Progress(mode)` reports steps (rate, ETA, latest metrics), epochs and
compilations:

* 'bar': a tqdm progress bar (the notebook widget in Jupyter/Colab, text in
  a terminal), with messages printed above it;
* 'lines': text lines: absl log lines in an absl program (the binaries,
  when stderr is not a terminal, e.g. a log file), else printed to stdout;
* 'none': nothing;
* 'auto' (default): 'bar' in a notebook kernel or when stderr is a
  terminal, else 'lines'.

Compilation is announced before it starts, with a rough duration, and timed
when it ends: XLA compiles the search step for a minute or more on a small
CPU, and silence that long looks like a hang.
"""

import sys
import time

from absl import flags
from absl import logging
import jax

MODES = ('auto', 'bar', 'lines', 'none')


def in_notebook() -> bool:
  """True inside a Jupyter / Colab kernel."""
  ipython = sys.modules.get('IPython')  # Imported already in a kernel.
  get = getattr(ipython, 'get_ipython', None)
  shell = get() if get is not None else None
  return shell is not None and getattr(shell, 'kernel', None) is not None


def resolve(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f'Unknown progress mode {mode!r}; valid: {MODES}.')
  if mode != 'auto':
    return mode
  isatty = getattr(sys.stderr, 'isatty', lambda: False)
  return 'bar' if in_notebook() or isatty() else 'lines'


def compile_estimate() -> str:
  """A rough duration for compiling a search or training step here."""
  cached = bool(jax.config.jax_compilation_cache_dir)
  if jax.default_backend() == 'cpu':
    rough = ('roughly 30 s to 3 min on a 2-core CPU for the small presets, '
             'more for bigger networks')
  else:
    rough = 'usually under a minute on a GPU or TPU'
  if cached:
    rough += '; seconds if these shapes were compiled before (XLA cache)'
  return rough


def _line(text: str) -> None:
  """absl INFO in an absl program (its log format and destination), else
  stdout: outside absl's app.run, INFO lines are not shown."""
  if flags.FLAGS.is_parsed():
    logging.info('%s', text)
  else:
    print(text, flush=True)


def fmt_time(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def _tqdm():
  """tqdm's notebook widget where Jupyter can show it (ipywidgets present),
  else its text bar: `tqdm.auto` without ipywidgets warns "IProgress not
  found" and falls back anyway."""
  try:
    import ipywidgets  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    from tqdm.std import tqdm  # pylint: disable=g-import-not-at-top
    return tqdm
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm


class Progress:
  """Step, epoch and compile reports, as a bar or as log lines."""

  def __init__(self, mode: str = 'auto', description: str = ''):
    self.mode = resolve(mode)
    self.description = description
    self._bar = None
    self._compile_start = None

  # Messages ---------------------------------------------------------------

  def message(self, text: str) -> None:
    if self.mode == 'none':
      return
    if self.mode == 'bar':
      _tqdm().write(text)
    else:
      _line(text)

  def compiling(self, what: str) -> None:
    self._compile_start = time.time()
    self.message(f'Compiling {what} ({compile_estimate()})...')

  def compiled(self, what: str) -> float:
    seconds = time.time() - (self._compile_start or time.time())
    self._compile_start = None
    self.message(f'Compiled {what} in {seconds:.1f} s.')
    return seconds

  # Steps ------------------------------------------------------------------

  def begin(self, start: int, total: int) -> None:
    if self.mode == 'bar' and start < total:
      self._bar = _tqdm()(total=total, initial=start, desc=self.description,
                       unit='step', dynamic_ncols=True, leave=True)

  def step(self, done: int, total: int, metrics: dict | None,
           seconds_per_step: float | None) -> None:
    """After step `done` (1-based); `metrics` and the recent seconds per
    step when they were fetched (every N steps), else None."""
    if self._bar is not None:
      self._bar.update(done - self._bar.n)
      if metrics:
        self._bar.set_postfix({k: f'{v:.4f}' for k, v in
                               sorted(metrics.items())}, refresh=False)
    elif self.mode == 'lines' and metrics is not None:
      _line(
          f'step {done}/{total} ({100 * done / total:.0f}%) ' +
          ' '.join(f'{k}={v:.4f}' for k, v in sorted(metrics.items())) +
          f' | {seconds_per_step:.2f} s/step | ETA '
          f'{fmt_time(seconds_per_step * (total - done))}')

  def end(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None
