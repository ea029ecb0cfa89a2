"""The step loop shared by search and retraining.

`run` drives a jitted step from a start step to a total: it reports
progress with ETA (`nasjax.progress`: a bar or log lines), announces and
times the first step's compilation, writes per-step metrics to TensorBoard,
calls back at the end of every epoch, checkpoints every N steps and at the
end (when there is a checkpointer), and stops cleanly:

* SIGTERM sets a flag; the loop saves a checkpoint after the current step and
  returns with status 'interrupted'. Ctrl-C (KeyboardInterrupt) saves too,
  then re-raises.
* A step reports `metrics['finite']`; the steps keep the old state when it is
  false (`train_state.keep_if_finite`: a non-finite loss, gradient norm or
  new state). The loop then raises `NonFiniteError` (a `FloatingPointError`)
  without saving, so the last checkpoint on disk, if any, is good.

Metrics are fetched one step late, so the host never makes the device wait.
`resume` restores the latest checkpoint, after checking that it belongs to a
run with the same config (`config_differences`).

Synopsis:

  result = loop.run(state, start=0, total_steps=n, steps_per_epoch=m,
                    step=lambda state, i: jitted(state, next_batch()),
                    checkpointer=ckpt, meta_for=meta, ...)
"""

import dataclasses
import fcntl
import functools
import json
import os
import signal
import socket
import tempfile
import time
from typing import Any, Callable

from absl import logging
import jax
import numpy as np

from nasjax import checkpoint
from nasjax import errors
from nasjax import history as history_lib
from nasjax import parallel
from nasjax import progress as progress_lib

StepFn = Callable[[Any, int], tuple[Any, dict]]


class NonFiniteError(FloatingPointError):
  """A step produced a non-finite loss, gradient or state; nothing was kept."""


class Terminated(BaseException):
  """SIGTERM outside the step loop (start-up, the final derivation or
  evaluation) of a run function decorated with `releases_workdirs`. What
  the loop saved is kept; the same run started again resumes from it, or
  redoes the final phase of a run whose last step was saved.

  A `BaseException`, like `KeyboardInterrupt`: the handler raises it
  wherever Python happens to be, and code that catches `Exception` there
  (a logging handler writing a line, for one) must not swallow it."""


_TERMINATE_PENDING = [False]


def _raise_terminated(signum, frame):
  del signum, frame
  _TERMINATE_PENDING[0] = True
  raise Terminated('SIGTERM outside the step loop')


def check_terminated():
  """Raises `Terminated` if a SIGTERM arrived since the run function
  started: long final phases call it between chunks, so that a signal
  whose exception was lost (raised in a garbage-collection callback, say)
  still stops them."""
  if _TERMINATE_PENDING[0]:
    raise Terminated('SIGTERM outside the step loop')


class Interrupt:
  """Turns SIGTERM into a flag the loop checks between steps."""

  def __init__(self):
    self.requested = False
    self._old = None

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: leave signals alone.
      self._old = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


@dataclasses.dataclass
class Result:
  state: Any
  status: str                      # 'completed' or 'interrupted'
  start: int                       # the step this run started at
  last_checkpoint: int | None      # step of the last checkpoint written
  step_times: list[float]
  last_epoch: dict[str, float]     # mean metrics of the last full epoch
  stopped_at: int | None = None    # the step an early stop ended the run at

  def summary(self, total_steps: int, t0: float, devices: int) -> dict:
    """The entries every results.json starts with (`t0`: the run's
    `time.time()` at its start)."""
    return {
        'status': self.status, 'start_step': self.start,
        'step': int(jax.device_get(self.state.step)),
        'total_steps': total_steps, 'last_checkpoint': self.last_checkpoint,
        'wall_seconds': time.time() - t0,
        # Without the first step (it compiles) when there are others.
        'median_step_seconds': (float(np.median(self.step_times[1:] or
                                                self.step_times))
                                if self.step_times else None),
        'devices': int(devices), 'last_epoch_metrics': self.last_epoch,
        **({'stopped_early_at_step': self.stopped_at}
           if self.stopped_at is not None else {})}


class _Metrics:
  """Accumulates host metrics per epoch; writes them to TensorBoard."""

  def __init__(self, writer, learning_rate):
    self.writer, self.learning_rate = writer, learning_rate
    self.sums, self.count = {}, 0

  def add(self, metrics, step) -> dict[str, float]:
    host = {k: float(v) for k, v in metrics.items()
            if k != 'finite' and not k.endswith('_finite')}
    for k, v in host.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    self.count += 1
    if self.writer is not None:
      for k, v in host.items():
        self.writer.add_scalar(f'train/{k}', v, step + 1)
      if self.learning_rate is not None:
        self.writer.add_scalar('train/lr', float(self.learning_rate(step)),
                               step + 1)
    return host

  def epoch_means(self, reset: bool = True) -> dict[str, float]:
    means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
    if reset:
      self.sums, self.count = {}, 0
    return means


def prepare_workdir(path: str) -> None:
  """Creates `path` if needed, checks that files can be written there and
  takes its lock (`lock_workdir`)."""
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise errors.UserError(
        f'Cannot write to the workdir {path!r}: {e.strerror or e}.') from None
  lock_workdir(path)


# The workdir lock: an exclusive `flock` on LOCK_FILE, which names its owner.
# The kernel drops the lock when its process dies however it dies, so a
# lock file left by a killed run never blocks the next one. Held locks, by
# real path: the open file; `_SCOPES`: the locks each `releases_workdirs`
# call took, released when it returns.
LOCK_FILE = 'nasjax.lock'
_HELD: dict[str, int] = {}
_SCOPES: list[list[str]] = []


def lock_workdir(path: str) -> None:
  """Takes `path`'s lock for this process, or raises `UserError` naming the
  run that holds it. Taken already by this process: nothing to do. Only the
  first process of a multi-host run locks (the others share its workdir).
  Inside a `releases_workdirs` call the lock is released when that call
  returns; otherwise when the process exits."""
  key = os.path.realpath(path)
  if key in _HELD or jax.process_index() != 0:
    return
  name = os.path.join(path, LOCK_FILE)
  try:
    fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise errors.UserError(
        f'Cannot create the lock file {name!r}: {e.strerror or e}.') from None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    owner = os.pread(fd, 512, 0).decode(errors='replace').strip()
    os.close(fd)
    raise errors.UserError(
        f'The workdir {path!r} is in use by another run '
        f'({owner or "owner unknown"}); wait for it to end or use another '
        'workdir.') from None
  left = os.pread(fd, 512, 0).decode(errors='replace').strip()
  if left:
    logging.warning('Taking over the workdir lock %s, left by a run that '
                    'ended without releasing it (%s).', name, left)
  os.ftruncate(fd, 0)
  os.pwrite(fd, (f'host {socket.gethostname()} pid {os.getpid()}, since '
                 f'{time.strftime("%Y-%m-%d %H:%M:%S")}\n').encode(), 0)
  _HELD[key] = fd
  if _SCOPES:
    _SCOPES[-1].append(key)


def unlock_workdir(path: str) -> None:
  """Releases `path`'s lock if this process holds it. The file stays, empty
  (removing it would let a process that opened it before the removal lock a
  file no one else sees); one that names an owner was left by a run that
  did not end cleanly."""
  fd = _HELD.pop(os.path.realpath(path), None)
  if fd is None:
    return
  try:
    os.ftruncate(fd, 0)
  finally:
    os.close(fd)


def releases_workdirs(fn):
  """Decorates a run function: the workdir locks it takes are released when
  it returns or raises, and SIGTERM outside its step loop raises
  `Terminated` (inside, `run` saves and stops)."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    _SCOPES.append([])
    _TERMINATE_PENDING[0] = False
    try:
      old = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # Not the main thread: leave signals alone.
      old = None
    try:
      return fn(*args, **kwargs)
    finally:
      if old is not None:
        signal.signal(signal.SIGTERM, old)
      _TERMINATE_PENDING[0] = False
      for key in reversed(_SCOPES.pop()):
        unlock_workdir(key)
  return wrapped


# Config fields that may change between a run and its resumption: how the
# run is driven, logged or laid out on devices, not what it computes (and
# derive.num_samples, which only the final derivation reads).
RESUMABLE_FIELDS = (
    'max_steps', 'log_every_steps', 'checkpoint_every_steps',
    'keep_checkpoints', 'num_devices', 'cpu_devices', 'depthwise_impl',
    'data.data_dir', 'search.staged', 'search.compile_workers',
    'search.second_order_impl', 'eval_every_epochs', 'eval_batch_size',
    'genotype', 'derive.num_samples')


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _plain(x):
  """`x` as JSON reads it back (tuples as lists), for comparisons."""
  return json.loads(json.dumps(x))


def config_differences(saved: dict, now: dict,
                       ignore=RESUMABLE_FIELDS) -> list[str]:
  """'field: saved -> now' for every field that differs, but `ignore`d ones."""
  saved, now = _flatten(_plain(saved)), _flatten(_plain(now))
  return [f'{k}: {saved.get(k, "(absent)")!r} in the workdir, '
          f'{now.get(k, "(absent)")!r} now'
          for k in sorted(set(saved) | set(now))
          if k not in ignore and saved.get(k) != now.get(k)]


def resume(checkpointer: checkpoint.Checkpointer, state, mesh,
           expect: dict | None = None):
  """(the latest checkpoint restored into `state`'s structure, its metadata),
  or (`state`, None) if there is none.

  `expect`: metadata entries (e.g. {'config': ..., 'genotype': ...}) that
  the checkpoint's must equal, up to `RESUMABLE_FIELDS` of the config; a
  difference is a `errors.ConfigError` naming every differing field, and
  nothing is restored.
  """
  latest = checkpointer.latest_step()
  if latest is None:
    return state, None
  if expect:
    meta = checkpointer.restore_meta(latest)
    diffs = []
    for key, value in expect.items():
      if key not in meta:
        continue
      if isinstance(value, dict) and key == 'config':
        diffs += config_differences(meta[key], value)
      elif _plain(meta[key]) != _plain(value):
        diffs.append(f'{key} differs')
    if diffs:
      raise errors.ConfigError(
          f'The workdir {os.path.dirname(checkpointer.directory)} holds a run '
          f'(step {latest}) with a different setting, so it cannot be '
          f'resumed: {"; ".join(diffs)}. Use another workdir, or the '
          'settings of that run.')
  restored, meta = checkpointer.restore_latest(state)
  logging.info('Resumed from step %d (%s).', meta['step'],
               checkpointer.directory)
  return parallel.replicate(restored, mesh), meta


@dataclasses.dataclass
class Opened:
  """A run's starting point (`open_run`)."""
  state: Any
  start: int                                   # the step it starts at
  checkpointer: checkpoint.Checkpointer | None
  meta: dict | None                            # of the restored checkpoint
  history: list                                # `history.EpochRecord`s so far
  # A run that had finished already: its results.json, which the run
  # function returns as its summary, writing no result file again.
  previous: dict | None = None


def open_run(workdir: str | None, state, mesh, *, keep: int, expect: dict,
             report: progress_lib.Progress, what: str,
             total_steps: int) -> Opened:
  """Checkpointer, resumed state and history of a run in `workdir`, or a
  fresh start with nothing to save when `workdir` is None.

  `expect` is `resume`'s; `what` names the run in the resume message. The
  state comes back with `parallel.state_shardings` (`parallel.place`).
  """
  if workdir is None:
    return Opened(parallel.place(state, mesh), int(jax.device_get(state.step)),
                  None, None, [])
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'), keep)
  state, meta = resume(ckpt, state, mesh, expect=expect)
  state = parallel.place(state, mesh)
  start = int(jax.device_get(state.step))
  previous = None
  if start >= total_steps:
    previous = finished_results(workdir)
  if previous is not None:
    report.message(f'The {what} in {workdir} is complete already (step '
                   f'{start} of {total_steps}): its results are read back; '
                   'no file is rewritten.')
  elif start:
    report.message(f'Resuming the {what} in {workdir} at step {start} of '
                   f'{total_steps}.')
  return Opened(state, start, ckpt, meta, history_lib.load(workdir, start),
                previous)


def finished_results(workdir: str) -> dict | None:
  """The results.json of a completed run in `workdir`, or None."""
  try:
    with open(os.path.join(workdir, 'results.json')) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return None
  return results if results.get('status') == 'completed' else None


def run(state, *, start: int, total_steps: int, steps_per_epoch: int,
        step: StepFn, checkpointer: checkpoint.Checkpointer | None,
        meta_for: Callable[[Any], dict],
        end_of_epoch: Callable[[Any, int, dict], None] | None = None,
        writer=None, learning_rate: Callable[[int], Any] | None = None,
        log_every: int = 50, checkpoint_every: int = 1000,
        report: progress_lib.Progress | None = None,
        first_step_compiles: str | None = None,
        resumed_meta: dict | None = None) -> Result:
  """Runs steps [start, total_steps) of `step(state, i) -> (state, metrics)`.

  Args:
    state: the (device) state at step `start`.
    start, total_steps: the step range.
    steps_per_epoch: `end_of_epoch(state, epoch, mean_metrics)` is called
      after every `steps_per_epoch` steps and after the last step (then
      possibly for a part of an epoch, which a resumed run calls again for
      the whole epoch).
    step: one step; it fetches its own batches.
    checkpointer: where checkpoints go; None: nowhere (nothing is saved).
    meta_for: state -> the JSON metadata saved with a checkpoint.
    end_of_epoch: optional epoch callback; a true return value stops the
      run there (an early stop): it saves and returns with status
      'completed' and `stopped_at` the step count.
    writer: a tensorboardX SummaryWriter or None (other hosts).
    learning_rate: step -> lr, logged if given.
    log_every, checkpoint_every: in steps.
    report: where progress goes (a `progress.Progress`; default log lines).
    first_step_compiles: if set, the first call of `step` compiles this
      (e.g. 'the search step'): it is announced and timed.
    resumed_meta: the metadata of the checkpoint the state was restored
      from: the metric sums of an epoch it interrupted continue from there,
      so epoch means equal those of an uninterrupted run.
  """
  report = report or progress_lib.Progress('lines')
  metrics_acc = _Metrics(writer, learning_rate)
  partial = (resumed_meta or {}).get('partial_epoch')
  if partial:
    metrics_acc.sums, metrics_acc.count = dict(partial['sums']), partial['count']
  step_times, pending, last_epoch = [], None, {}
  last_saved = checkpointer.latest_step() if checkpointer else None
  status = 'completed'
  stopped_at = None

  def check(metrics, i):
    if not bool(metrics['finite']):
      values = {k: float(v) for k, v in metrics.items()
                if k != 'finite' and not k.endswith('_finite')}
      # A step that runs other updates after its own (the ENAS controller
      # phase) reports each one's finiteness as '<name>_finite'.
      parts = [k[:-len('_finite')] for k, v in metrics.items()
               if k.endswith('_finite') and not bool(v)]
      what = (f'Non-finite values in the {" and ".join(parts)} update at the '
              f'end of step {i} (the step\'s own metrics: {values})' if parts
              else f'Non-finite loss or gradient at step {i} ({values})')
      latest = checkpointer.latest_step() if checkpointer else None
      if checkpointer is None:
        kept = 'no workdir was given, so nothing was saved'
      elif latest is None:
        kept = 'no checkpoint exists yet, so nothing is kept'
      else:
        kept = (f'the last good checkpoint (step {latest}) in '
                f'{checkpointer.directory} is kept')
      raise NonFiniteError(
          f'{what}. The run stopped; the state was not updated with it and '
          f'{kept}.')

  def flush():
    nonlocal pending
    host = None
    if pending is not None:
      check(*pending)
      host = metrics_acc.add(*pending)
      pending = None
    return host

  def save(st):
    nonlocal last_saved
    if checkpointer is None:
      return
    meta = meta_for(st)
    # Every pending metric is flushed by now: the sums are those of the
    # steps of the current epoch up to this one.
    meta['partial_epoch'] = {'sums': metrics_acc.sums,
                             'count': metrics_acc.count}
    checkpointer.save(st, meta)
    last_saved = int(jax.device_get(st.step))

  def close():
    report.end()
    if checkpointer is not None:
      checkpointer.close()

  if not first_step_compiles:
    report.begin(start, total_steps)
  with Interrupt() as interrupt:
    try:
      for i in range(start, total_steps):
        t = time.time()
        if i == start and first_step_compiles:
          report.compiling(first_step_compiles)
        state, metrics = step(state, i)
        if i == start and first_step_compiles:
          # The bar starts once compiled: below the compile messages, and
          # its rate and ETA do not count the compilation.
          report.compiled(first_step_compiles)
          report.begin(start, total_steps)
        flush()  # The previous step's metrics: ready by now.
        pending = (metrics, i)
        jax.block_until_ready(metrics)
        step_times.append(time.time() - t)
        done = i + 1
        host, rate = None, None
        if done % log_every == 0 or done == total_steps:
          host = flush()
          # The first step compiles: it counts only while it is alone.
          rate = float(np.median(step_times[1:][-20:] or step_times))
        report.step(done, total_steps, host, rate)
        if done % steps_per_epoch == 0 or done == total_steps:
          flush()
          # A run that stops mid-epoch (max_steps) reports the epoch so far
          # and keeps its sums, which the checkpoint saves for a resumption.
          last_epoch = metrics_acc.epoch_means(
              reset=done % steps_per_epoch == 0)
          if end_of_epoch is not None and end_of_epoch(
              state, (done - 1) // steps_per_epoch, last_epoch):
            flush()
            save(state)
            stopped_at = done
            break
        if (done % checkpoint_every == 0 or done == total_steps or
            interrupt.requested):
          flush()
          save(state)
        if interrupt.requested:
          logging.warning('SIGTERM: saved step %s, stopping.', last_saved)
          status = 'interrupted'
          break
    except KeyboardInterrupt:
      if pending is not None:
        check(*pending)
      save(state)
      logging.warning('Interrupted: saved step %s.', last_saved)
      close()
      raise
    except BaseException:
      report.end()
      raise
  close()
  return Result(state, status, start, last_saved, step_times, last_epoch,
                stopped_at)
