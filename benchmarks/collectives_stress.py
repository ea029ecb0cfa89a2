r"""Repeats multi-device CPU runs, each in a fresh process under a timeout,
and counts the runs that hang or fail: the check for XLA:CPU collective
deadlocks (benchmarks/README.md, "Known problem").

  python benchmarks/collectives_stress.py --what=step --runs=10 --steps=500
  python benchmarks/collectives_stress.py --what=search --runs=20
  python benchmarks/collectives_stress.py --what=tests --runs=20

--what:
  step    the tiny search step (tests/helpers.py: C=4, 3 cells, batch 16) on
          --devices XLA:CPU devices, --steps times in one process
          (--arch_mode, --staged as the binaries run second order);
  search  the search binary on the tiny config with --config.cpu_devices=2
          and --steps steps (staged exact second order, as by default);
  tests   the multi-device tests (8 fake devices; two processes joined by
          jax.distributed).
Prints one line per run (exit status, seconds) and a summary line. XLA's
collective timeout is lowered to 30 s, so a deadlock ends the run with an
error instead of waiting for --timeout.
"""

import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WHAT = flags.DEFINE_enum('what', 'step', ['step', 'search', 'tests'],
                          'What to repeat.')
_RUNS = flags.DEFINE_integer('runs', 20, 'Fresh processes to run.')
_STEPS = flags.DEFINE_integer('steps', 200, 'Steps per run (step, search).')
_DEVICES = flags.DEFINE_integer('devices', 2, 'XLA:CPU devices (step).')
_ARCH_MODE = flags.DEFINE_string('arch_mode', 'first_order',
                                 'Search step mode (step).')
_STAGED = flags.DEFINE_bool('staged', False, 'Staged step (step).')
_TIMEOUT = flags.DEFINE_integer('timeout', 600, 'Seconds per run.')

_STEP_LOOP = r'''
import functools, sys
import jax
from nasjax import parallel
parallel.add_xla_flags()
from nasjax import bilevel as step_lib
from tests import helpers
mode, staged, n, devices = sys.argv[1], sys.argv[2] == '1', int(sys.argv[3]), int(sys.argv[4])
mesh = parallel.make_mesh(devices)
kw = dict(model=helpers.MODEL, preprocess=helpers.PREP, arch_mode=mode)
if staged:
  step = step_lib.staged_search_step(parallel.stage_jitter(mesh), **kw)
else:
  step = parallel.jit_step(functools.partial(step_lib.search_step, **kw),
                           mesh, num_batches=2)
state = parallel.replicate(helpers.make_state(), mesh)
tb = parallel.shard_batch(helpers.batch(1, 16), mesh)
vb = parallel.shard_batch(helpers.batch(2, 16), mesh)
for _ in range(n):
  state, _ = step(state, tb, vb)
jax.block_until_ready(state)
'''


def _command(workdir: str) -> tuple[list[str], dict[str, str]]:
  env = dict(os.environ, PYTHONPATH=ROOT)
  collective_timeout = '--xla_cpu_collective_timeout_seconds=30'
  if _WHAT.value == 'step':
    env['XLA_FLAGS'] = (f'--xla_force_host_platform_device_count='
                        f'{_DEVICES.value} {collective_timeout}')
    return [sys.executable, '-c', _STEP_LOOP, _ARCH_MODE.value,
            '1' if _STAGED.value else '0', str(_STEPS.value),
            str(_DEVICES.value)], env
  if _WHAT.value == 'search':
    env['XLA_FLAGS'] = collective_timeout
    config = os.path.join(ROOT, 'experiments', 'configs', 'darts_search.py')
    return [sys.executable, os.path.join(ROOT, 'experiments',
                                         'darts_search.py'),
            f'--config={config}:tiny', f'--workdir={workdir}',
            '--config.cpu_devices=2', f'--config.max_steps={_STEPS.value}',
            '--config.log_every_steps=1000000'], env
  env['XLA_FLAGS'] = (f'--xla_force_host_platform_device_count=8 '
                      f'{collective_timeout}')
  return [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
          os.path.join(ROOT, 'tests', 'parallel_test.py'),
          os.path.join(ROOT, 'tests', 'multihost_test.py'),
          os.path.join(ROOT, 'tests', 'config_test.py'), '-k',
          'eight or two_processes or 8_devices'], env


def main(argv):
  del argv
  outcomes = []
  for run in range(_RUNS.value):
    with tempfile.TemporaryDirectory() as workdir:
      cmd, env = _command(workdir)
      start = time.time()
      try:
        out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=_TIMEOUT.value, check=False)
        status = 'ok' if out.returncode == 0 else f'exit {out.returncode}'
        if out.returncode:
          print(out.stderr[-2000:], file=sys.stderr)
      except subprocess.TimeoutExpired:
        status = 'timeout'
    outcomes.append(status)
    print(f'run {run + 1}/{_RUNS.value}: {status} {time.time() - start:.0f} s',
          flush=True)
  bad = sum(o != 'ok' for o in outcomes)
  print(f'{_WHAT.value}: {len(outcomes) - bad} of {len(outcomes)} runs ok, '
        f'{outcomes.count("timeout")} timed out, '
        f'{bad - outcomes.count("timeout")} failed')


if __name__ == '__main__':
  app.run(main)
