"""Two processes on localhost (jax.distributed, gloo CPU collectives) take
the same step as one process: the path users run on TPU pods."""

import functools
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from nasjax import parallel
from nasjax import bilevel as step_lib
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
  out, port = tmp_path / 'out.npz', _free_port()
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT,
             XLA_FLAGS=' '.join(('--xla_force_host_platform_device_count=2',)
                                + parallel.XLA_CPU_FLAGS))
  worker = os.path.join(ROOT, 'tests', 'multihost_worker.py')
  procs = [subprocess.Popen([sys.executable, worker, str(i), str(port),
                             str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  logs = [p.communicate(timeout=900)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), '\n'.join(
      log[-3000:] for log in logs)

  mesh = parallel.make_mesh(1)
  fn = functools.partial(step_lib.search_step, model=helpers.MODEL,
                         preprocess=helpers.PREP, arch_mode='first_order')
  new, metrics = parallel.jit_step(fn, mesh, num_batches=2)(
      parallel.replicate(helpers.make_state(), mesh),
      parallel.shard_batch(helpers.batch(1, 16), mesh),
      parallel.shard_batch(helpers.batch(2, 16), mesh))
  expected = jax.tree.leaves((new.params, new.alpha, metrics['val_loss']))
  with np.load(out) as got:
    assert len(got.files) == len(expected)
    for k, e in enumerate(expected):
      np.testing.assert_allclose(got[f'arr_{k}'], np.asarray(e), rtol=2e-4,
                                 atol=2e-5)
