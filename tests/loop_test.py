"""The step loop's reports: rates and timings that leave out compilation."""

import time
import types

import jax.numpy as jnp

from nasjax import loop
from nasjax import progress as progress_lib


class _Lines(progress_lib.Progress):
  """Records what a 'lines' report would print, in order."""

  def __init__(self):
    super().__init__('none')
    self.lines = []

  def message(self, text):
    self.lines.append(text)

  def begin(self, start, total):
    self.lines.append('begin')

  def step(self, done, total, metrics, seconds_per_step):
    self.lines.append(('step', done, seconds_per_step))


def test_the_compiling_first_step_is_left_out_of_rates_and_the_median():
  """A first step of 0.5 s (it compiles) and later ones of 0.01 s: the
  rate logged after step 2 on is about 0.01 s/step, not a mean with the
  compilation; results.json's median likewise; the bar begins after the
  compile messages."""
  def step(state, i):
    time.sleep(0.5 if i == 0 else 0.01)
    return (types.SimpleNamespace(step=jnp.int32(i + 1)),
            {'loss': jnp.float32(1.0), 'finite': jnp.bool_(True)})

  report = _Lines()
  result = loop.run(types.SimpleNamespace(step=jnp.int32(0)), start=0,
                    total_steps=3, steps_per_epoch=3, step=step,
                    checkpointer=None, meta_for=lambda s: {}, log_every=1,
                    report=report, first_step_compiles='the step')
  assert report.lines[:3] == ['Compiling the step (' +
                              progress_lib.compile_estimate() + ')...',
                              report.lines[1], 'begin']
  assert report.lines[1].startswith('Compiled the step in ')
  rates = [r for kind, _, r in report.lines[3:]]
  assert rates[0] >= 0.5 and all(r < 0.2 for r in rates[1:]), rates
  assert result.summary(3, time.time(), 1)['median_step_seconds'] < 0.2
