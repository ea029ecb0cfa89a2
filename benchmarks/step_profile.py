r"""Where a staged search step's compile time and run time go.

  python benchmarks/step_profile.py --size=8/5/32 --mode=second_order \
      --cpu_devices=2 [--steps=3] [--trace_dir=/tmp/step_trace]

Builds the problem of `darts_step.py` (problem.py) and the staged step the
binaries run (`nasjax.bilevel.staged_search_step`), then prints JSON lines:

* one per compiled program of the first step (`"what": "compile"`): JAX's
  tracing, lowering and XLA compile seconds (jax.monitoring events, keyed by
  the function's name);
* one per stage (`"what": "run"`): the median seconds of its calls over
  `--steps` steps after a warm-up step, with each stage waited for before the
  next starts (the stages depend on each other anyway, so the step time is
  close to their sum);
* with `--trace_dir`, one more step under `jax.profiler.trace` (XLA:CPU
  kernels are recorded with `--xla_cpu_enable_xprof_traceme`), then one line
  per kernel name (`"what": "kernel"`, numeric suffixes dropped, the
  `--top` largest): total milliseconds and calls in that step. The trace
  itself opens in TensorBoard's profiler or Perfetto.

One run per invocation: read the figures as a map of the costs; timings on a
small shared machine drift from run to run (benchmarks/README.md).
"""

import collections
import glob
import gzip
import json
import os
import re
import sys
import time

from absl import app
from absl import flags
import jax
from jax import monitoring
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nasjax import parallel  # pylint: disable=g-import-not-at-top

_SIZE = flags.DEFINE_string('size', '8/5/32', 'C/layers/batch.')
_MODE = flags.DEFINE_enum('mode', 'second_order',
                          ['first_order', 'second_order', 'finite_difference'],
                          'arch_mode of the staged step.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Timed steps after warm-up.')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices', 0, 'If > 0, split the CPU into this many XLA devices.')
_TRACE_DIR = flags.DEFINE_string(
    'trace_dir', '', 'If set, profile one more step into this directory.')
_TOP = flags.DEFINE_integer('top', 25, 'Kernel lines to print.')
_SYNC = flags.DEFINE_bool(
    'sync', True, 'Wait for each stage before dispatching the next (needed '
    'for per-stage times). --nosync times whole steps only, dispatched as '
    'the binaries dispatch them.')

_EVENTS = {'/jax/core/compile/jaxpr_trace_duration': 'trace_s',
           '/jax/core/compile/jaxpr_to_mlir_module_duration': 'lower_s',
           '/jax/core/compile/backend_compile_duration': 'compile_s'}


def _emit(**fields):
  print(json.dumps(fields), flush=True)


def _timed_stages(jit_stage, run_times, sync):
  """A `jit_stage` whose programs record their (synchronised) run times."""

  def wrap(fn, **kw):
    compiled = jit_stage(fn, **kw)
    name = getattr(fn, 'func', fn).__name__
    if not sync:
      return compiled

    def call(*args):
      t = time.perf_counter()
      out = jax.block_until_ready(compiled(*args))
      run_times[name].append(time.perf_counter() - t)
      return out

    return call

  return wrap


def _kernel_totals(trace_dir):
  """{kernel name: [total microseconds, calls]} from a profiler trace."""
  files = glob.glob(os.path.join(trace_dir, '**', '*.trace.json.gz'),
                    recursive=True)
  events = json.load(gzip.open(max(files, key=os.path.getmtime)))
  totals = collections.defaultdict(lambda: [0.0, 0])
  # Containers, not kernels: the executor, host-side dispatch, loops.
  skip = ('ThunkExecutor', 'block_until', '$', 'Slinky', 'Pjit', 'CommonPj',
          'while')
  for e in events['traceEvents']:
    if e.get('ph') != 'X' or e['name'].startswith(skip):
      continue
    t = totals[re.sub(r'\.\d+$', '', e['name'])]
    t[0] += e['dur']
    t[1] += 1
  return totals


def main(argv):
  del argv
  extra = list(parallel.XLA_CPU_FLAGS)
  if _CPU_DEVICES.value:
    extra.append(
        f'--xla_force_host_platform_device_count={_CPU_DEVICES.value}')
    parallel.size_cpu_thread_pool(_CPU_DEVICES.value)  # As the binaries.
  if _TRACE_DIR.value:
    extra.append('--xla_cpu_enable_xprof_traceme=true')
  parallel.add_xla_flags(extra)
  from nasjax import bilevel as step_lib  # pylint: disable=g-import-not-at-top
  import problem as problem_lib  # pylint: disable=g-import-not-at-top

  c, n, b = (int(v) for v in _SIZE.value.split('/'))
  p = problem_lib.make(c, n, b)
  run_times = collections.defaultdict(list)
  step = step_lib.staged_search_step(
      _timed_stages(parallel.stage_jitter(p.mesh), run_times,
                    _SYNC.value), model=p.net,
      preprocess=p.preprocess, arch_mode=_MODE.value,
      learning_rate=p.schedule)
  header = dict(C=c, layers=n, batch=b, mode=_MODE.value,
                num_devices=jax.device_count(),
                device=str(jax.devices()[0].device_kind),
                cpu=problem_lib.host_cpu())

  compile_s = collections.defaultdict(collections.Counter)

  def record(event, secs, fun_name='?', **unused_kw):
    # Tracing is reported as `f`, lowering and compiling as `jit(f)`.
    if event in _EVENTS:
      program = re.sub(r'^jit\((.*)\)$', r'\1', fun_name)
      compile_s[program][_EVENTS[event]] += secs

  monitoring.register_event_duration_secs_listener(record)
  t = time.perf_counter()
  state, _ = step(p.state, p.train_batch, p.val_batch)
  jax.block_until_ready(state)
  first = time.perf_counter() - t
  for name, secs in sorted(compile_s.items(), key=lambda kv: -sum(
      kv[1].values())):
    _emit(what='compile', program=name,
          **{k: round(v, 2) for k, v in sorted(secs.items())}, **header)
  _emit(what='first_step', seconds=round(first, 1),
        compile_total_s=round(sum(sum(s.values())
                                  for s in compile_s.values()), 1), **header)

  run_times.clear()
  step_times = []
  for _ in range(_STEPS.value):
    t = time.perf_counter()
    state, _ = step(state, p.train_batch, p.val_batch)
    jax.block_until_ready(state)
    step_times.append(time.perf_counter() - t)
  per_step = _STEPS.value
  for name, ts in sorted(run_times.items(), key=lambda kv: -sum(kv[1])):
    _emit(what='run', stage=name, calls_per_step=len(ts) // per_step,
          median_call_s=round(float(np.median(ts)), 3), **header)
  _emit(what='step', median_s=round(float(np.median(step_times)), 2),
        **header)

  if _TRACE_DIR.value:
    with jax.profiler.trace(_TRACE_DIR.value):
      state, _ = step(state, p.train_batch, p.val_batch)
      jax.block_until_ready(state)
    totals = _kernel_totals(_TRACE_DIR.value)
    all_us = sum(t for t, _ in totals.values())
    for name, (us, calls) in sorted(totals.items(),
                                    key=lambda kv: -kv[1][0])[:_TOP.value]:
      _emit(what='kernel', name=name[:120], total_ms=round(us / 1e3, 1),
            calls=calls, share=round(us / all_us, 3), **header)


if __name__ == '__main__':
  app.run(main)
