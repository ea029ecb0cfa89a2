r"""Times DARTS search steps: one JSON line per (size, mode).

  python benchmarks/darts_step.py --sizes=8/5/32,16/8/64 \
      --modes=weights,first_order,second_order [--steps=5]

`--xla_cpu_flags` (default on) adds the XLA:CPU options the binaries use
(`nasjax.parallel.XLA_CPU_FLAGS`). `--cpu_devices=2` splits a 2-core CPU
into two XLA devices and shards the batch over them (the step is the same
function; tests/parallel_test.py shows 8 devices give the step of 1). The
model is initialised by a jitted function, as in the binaries.

Modes: (a) 'weights' = a weight step; (b) 'first_order' = first-order alpha
step + weight step; (c) 'second_order' = exact second-order alpha step +
weight step. Each (size, mode) runs in a fresh subprocess so that peak RSS
(ru_maxrss) belongs to it. Input: random 32x32x3 uint8 images, 10 classes,
fixed train and validation batches (data time excluded, as in the reference
measurements of docs/reference_figures.md 4). Compile time is measured
separately: lower + compile of a one-program step; for a staged step
(`--staged`, the default for (c), as in the binaries) the wall time of
`step.precompile` (every stage traced and compiled before the first step,
two XLA compiles at a time, as in the binaries), or with `--noprecompile`
the sum of JAX's tracing, lowering and XLA compile durations
(jax.monitoring events) during a first step; either is taken before the
timed steps. `compile_work_s` adds up those durations in both cases. The
median is over `--steps` steps after one warm-up step.
"""

import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from nasjax import parallel

_SIZES = flags.DEFINE_list('sizes', ['8/5/32'], 'C/layers/batch triples.')
_MODES = flags.DEFINE_list('modes', ['weights', 'first_order', 'second_order'],
                           'Modes to time.')
_STEPS = flags.DEFINE_integer('steps', 5, 'Timed steps after warm-up.')
_IMPL = flags.DEFINE_string('depthwise_impl', 'shift', 'layers impl.')
_REMAT = flags.DEFINE_bool('remat', True, 'Rematerialise edges.')
_SO_IMPL = flags.DEFINE_string('second_order_impl', 'hvp',
                                'hvp or unrolled.')
_STAGED = flags.DEFINE_bool(
    'staged', True, 'Time the second-order step staged (several programs, '
    'as the binaries run it) instead of as one program. Weight steps and '
    'first order are one program either way, as in the binaries.')
_PRECOMPILE = flags.DEFINE_bool(
    'precompile', True, 'Staged steps: compile every stage before the first '
    'step, two XLA compiles at a time (`step.precompile`, as the binaries '
    'do); else each compiles at its first call.')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices', 0, 'If > 0, split the CPU into this many XLA devices '
    '(--xla_force_host_platform_device_count) and shard the batch over them.')
_XLA_CPU_FLAGS = flags.DEFINE_bool(
    'xla_cpu_flags', True, "Add nasjax.parallel.XLA_CPU_FLAGS (the binaries' "
    'XLA:CPU options) to XLA_FLAGS.')
_PRIMITIVES = flags.DEFINE_list(
    'primitives', [], 'Candidate ops of the search space (default: the 8 '
    "DARTS ops), e.g. none,skip_connect,sep_conv_3x3 to see one op's cost.")
_CHILD = flags.DEFINE_string('child', '', 'Internal: run one measurement.')


def measure(c, num_layers, b, mode, steps, impl, remat, so_impl, primitives,
            staged, precompile=True):
  import functools  # pylint: disable=g-import-not-at-top
  import jax
  from jax import monitoring
  import jax.numpy as jnp
  import numpy as np
  from nasjax import parallel
  from nasjax import bilevel as step_lib
  import problem as problem_lib
  p = problem_lib.make(c, num_layers, b, primitives=primitives, remat=remat,
                       depthwise_impl=impl)
  net, sched, prep, mesh, state, tb, vb = p
  space = net.space
  # As in the binaries: weight steps and first order are one program.
  staged = staged and mode in ('second_order', 'finite_difference')
  if mode == 'weights':
    fn = functools.partial(step_lib.weight_step, model=net, preprocess=prep)
    args = (tb,)
  elif staged:
    compiled = step_lib.staged_search_step(
        parallel.stage_jitter(mesh), model=net, preprocess=prep,
        arch_mode=mode, learning_rate=sched)
    args = (tb, vb)
  else:
    fn = functools.partial(step_lib.search_step, model=net, preprocess=prep,
                           arch_mode=mode, learning_rate=sched,
                           second_order_impl=so_impl)
    args = (tb, vb)
  compile_work_s = None
  if staged:
    # Several programs. With --precompile (the binaries' way) they compile
    # in `precompile`, timed by the wall clock; JAX's own tracing, lowering
    # and XLA compile durations are added up too (compile_work_s: more than
    # the wall time when compiles overlap) and any the first step still
    # spends is added to compile_s (none is expected).
    compile_events = ('/jax/core/compile/jaxpr_trace_duration',
                      '/jax/core/compile/jaxpr_to_mlir_module_duration',
                      '/jax/core/compile/backend_compile_duration')
    spent = []
    monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: spent.append(secs)
        if event in compile_events else None)
    wall = 0.0
    if precompile:
      t = time.perf_counter()
      compiled.precompile(state, *args)
      wall = time.perf_counter() - t
    compile_work_s = sum(spent)
    first_state = jax.tree.map(jnp.copy, state)  # The step donates it.
    jax.block_until_ready(first_state)
    del spent[:]
    jax.block_until_ready(compiled(first_state, *args))
    compile_s = wall + sum(spent)
    compile_work_s += sum(spent)
  else:
    jitted = parallel.jit_step(fn, mesh, num_batches=len(args))
    t = time.perf_counter()
    compiled = jitted.lower(state, *args).compile()
    compile_s = time.perf_counter() - t
  times = []
  for _ in range(steps + 1):
    t = time.perf_counter()
    state, metrics = compiled(state, *args)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t)
  return {'C': c, 'layers': num_layers, 'batch': b, 'mode': mode,
          'depthwise_impl': impl, 'remat': remat,
          'second_order_impl': so_impl if mode == 'second_order' else None,
          'staged': staged,
          'primitives': list(space.primitives),
          'precompile': precompile if staged else None,
          'compile_s': round(compile_s, 2),
          'compile_work_s': (round(compile_work_s, 2)
                             if compile_work_s is not None else None),
          'median_step_s': round(float(np.median(times[1:])), 3),
          'min_step_s': round(float(np.min(times[1:])), 3),
          'warmup_step_s': round(times[0], 3),
          'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          // 1024,
          'device': str(jax.devices()[0].device_kind),
          'cpu': problem_lib.host_cpu(),
          'num_devices': jax.device_count(), 'jax': jax.__version__,
          'xla_flags': os.environ.get('XLA_FLAGS', ''),
          'loss_finite': bool(metrics['finite'])}


def main(argv):
  del argv
  if _CHILD.value:
    c, n, b, mode = _CHILD.value.split(',')
    print(json.dumps(measure(int(c), int(n), int(b), mode, _STEPS.value,
                             _IMPL.value, _REMAT.value, _SO_IMPL.value,
                             _PRIMITIVES.value, _STAGED.value,
                             _PRECOMPILE.value)),
          flush=True)
    return
  # The children inherit XLA_FLAGS; flags already set there win.
  if _XLA_CPU_FLAGS.value:
    parallel.add_xla_flags()
  if _CPU_DEVICES.value:
    parallel.add_xla_flags(
        [f'--xla_force_host_platform_device_count={_CPU_DEVICES.value}'])
    parallel.size_cpu_thread_pool(_CPU_DEVICES.value)  # As the binaries.
  for size in _SIZES.value:
    c, n, b = size.split('/')
    for mode in _MODES.value:
      out = subprocess.run(
          [sys.executable, __file__, f'--child={c},{n},{b},{mode}',
           f'--steps={_STEPS.value}', f'--depthwise_impl={_IMPL.value}',
           f'--remat={_REMAT.value}',
           f'--second_order_impl={_SO_IMPL.value}',
           f'--staged={_STAGED.value}',
           f'--precompile={_PRECOMPILE.value}',
           f'--primitives={",".join(_PRIMITIVES.value)}'],
          capture_output=True, text=True, check=False)
      lines = [l for l in out.stdout.splitlines() if l.startswith('{')]
      print(lines[-1] if lines else json.dumps(
          {'size': size, 'mode': mode, 'error': out.stderr[-2000:]}),
            flush=True)


if __name__ == '__main__':
  app.run(main)
