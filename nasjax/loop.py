"""The step loop shared by search and retraining.

`run` drives a jitted step from a start step to a total: it logs a progress
line with ETA, writes per-step metrics to TensorBoard, calls back at the end
of every epoch, checkpoints every N steps and at the end, and stops cleanly:

* SIGTERM sets a flag; the loop saves a checkpoint after the current step and
  returns with status 'interrupted'. Ctrl-C (KeyboardInterrupt) saves too,
  then re-raises.
* A step reports `metrics['finite']`; the steps keep the old state when it is
  false (`train_state.keep_if_finite`: a non-finite loss, gradient norm or
  new state). The loop then raises `NonFiniteError` (a `FloatingPointError`)
  without saving, so the last checkpoint on disk, if any, is good.

Metrics are fetched one step late, so the host never makes the device wait.

Synopsis:

  result = loop.run(state, start=0, total_steps=n, steps_per_epoch=m,
                    step=lambda state, i: jitted(state, next_batch()),
                    checkpointer=ckpt, meta_for=meta, ...)
"""

import dataclasses
import os
import signal
import tempfile
import time
from typing import Any, Callable

from absl import logging
import jax
import numpy as np

from nasjax import checkpoint
from nasjax import errors
from nasjax import parallel

StepFn = Callable[[Any, int], tuple[Any, dict]]


class NonFiniteError(FloatingPointError):
  """A step produced a non-finite loss, gradient or state; nothing was kept."""


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


def fmt_time(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


@dataclasses.dataclass
class Result:
  state: Any
  status: str                      # 'completed' or 'interrupted'
  start: int                       # the step this run started at
  last_checkpoint: int | None      # step of the last checkpoint written
  step_times: list[float]
  last_epoch: dict[str, float]     # mean metrics of the last full epoch


class _Metrics:
  """Accumulates host metrics per epoch; writes them to TensorBoard."""

  def __init__(self, writer, learning_rate):
    self.writer, self.learning_rate = writer, learning_rate
    self.sums, self.count = {}, 0

  def add(self, metrics, step) -> dict[str, float]:
    host = {k: float(v) for k, v in metrics.items() if k != 'finite'}
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

  def epoch_means(self) -> dict[str, float]:
    means = {k: v / max(self.count, 1) for k, v in self.sums.items()}
    self.sums, self.count = {}, 0
    return means


def prepare_workdir(path: str) -> None:
  """Creates `path` if needed and checks that files can be written there."""
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as e:
    raise errors.UserError(
        f'Cannot write to the workdir {path!r}: {e.strerror or e}.') from None


def resume(checkpointer: checkpoint.Checkpointer, state, mesh):
  """The latest checkpoint restored into `state`'s structure, or `state`."""
  restored, meta = checkpointer.restore_latest(state)
  if restored is None:
    return state
  logging.info('Resumed from step %d (%s).', meta['step'],
               checkpointer.directory)
  return parallel.replicate(restored, mesh)


def run(state, *, start: int, total_steps: int, steps_per_epoch: int,
        step: StepFn, checkpointer: checkpoint.Checkpointer,
        meta_for: Callable[[Any], dict],
        end_of_epoch: Callable[[Any, int, dict], None] | None = None,
        writer=None, learning_rate: Callable[[int], Any] | None = None,
        log_every: int = 50, checkpoint_every: int = 1000) -> Result:
  """Runs steps [start, total_steps) of `step(state, i) -> (state, metrics)`.

  Args:
    state: the (device) state at step `start`.
    start, total_steps: the step range.
    steps_per_epoch: `end_of_epoch(state, epoch, mean_metrics)` is called
      after every `steps_per_epoch` steps and after the last step.
    step: one step; it fetches its own batches.
    checkpointer: where checkpoints go.
    meta_for: state -> the JSON metadata saved with a checkpoint.
    end_of_epoch: optional epoch callback.
    writer: a tensorboardX SummaryWriter or None (other hosts).
    learning_rate: step -> lr, logged if given.
    log_every, checkpoint_every: in steps.
  """
  metrics_acc = _Metrics(writer, learning_rate)
  step_times, pending, last_epoch = [], None, {}
  last_saved = checkpointer.latest_step()
  status = 'completed'

  def check(metrics, i):
    if not bool(metrics['finite']):
      values = {k: float(v) for k, v in metrics.items()}
      latest = checkpointer.latest_step()
      kept = ('no checkpoint exists yet, so nothing is kept' if latest is None
              else f'the last good checkpoint (step {latest}) in '
              f'{checkpointer.directory} is kept')
      raise NonFiniteError(
          f'Non-finite loss or gradient at step {i} ({values}). The run '
          f'stopped; the state was not updated with it and {kept}.')

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
    checkpointer.save(st, meta_for(st))
    last_saved = int(jax.device_get(st.step))

  with Interrupt() as interrupt:
    try:
      for i in range(start, total_steps):
        t = time.time()
        state, metrics = step(state, i)
        flush()  # The previous step's metrics: ready by now.
        pending = (metrics, i)
        jax.block_until_ready(metrics)
        step_times.append(time.time() - t)
        done = i + 1
        if done % log_every == 0 or done == total_steps:
          host = flush()
          rate = float(np.median(step_times[-20:]))
          logging.info(
              'step %d/%d (%.0f%%) %s | %.2f s/step | ETA %s', done,
              total_steps, 100 * done / total_steps,
              ' '.join(f'{k}={v:.4f}' for k, v in sorted(host.items())), rate,
              fmt_time(rate * (total_steps - done)))
        if done % steps_per_epoch == 0 or done == total_steps:
          flush()
          last_epoch = metrics_acc.epoch_means()
          if end_of_epoch is not None:
            end_of_epoch(state, (done - 1) // steps_per_epoch, last_epoch)
        if (done % checkpoint_every == 0 or done == total_steps or
            interrupt.requested):
          flush()
          save(state)
        if interrupt.requested:
          logging.warning('SIGTERM: saved step %d, stopping.', done)
          status = 'interrupted'
          break
    except KeyboardInterrupt:
      if pending is not None:
        check(*pending)
      save(state)
      logging.warning('Interrupted: saved step %d.', last_saved)
      checkpointer.close()
      raise
  checkpointer.close()
  return Result(state, status, start, last_saved, step_times, last_epoch)
