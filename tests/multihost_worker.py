"""One process of tests/multihost_test.py: a search step as host `i` of 2.

  python tests/multihost_worker.py PROCESS_ID PORT OUT.npz
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import functools  # pylint: disable=g-import-not-at-top

import jax
import numpy as np


def main(process_id: int, port: int, out: str):
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=f'localhost:{port}',
                             num_processes=2, process_id=process_id)
  from nasjax import parallel  # pylint: disable=g-import-not-at-top
  from nasjax import bilevel as step_lib
  from tests import helpers
  assert jax.process_count() == 2
  mesh = parallel.make_mesh()
  fn = functools.partial(step_lib.search_step, model=helpers.MODEL,
                         preprocess=helpers.PREP, arch_mode='first_order')
  step = parallel.jit_step(fn, mesh, num_batches=2)
  state = parallel.replicate(helpers.make_state(), mesh)
  per_host = 16 // jax.process_count()
  rows = slice(process_id * per_host, (process_id + 1) * per_host)
  local = lambda b: {k: v[rows] for k, v in b.items()}
  tb, vb = helpers.batch(1, 16), helpers.batch(2, 16)
  new, metrics = step(state, parallel.shard_batch(local(tb), mesh),
                      parallel.shard_batch(local(vb), mesh))
  leaves = jax.tree.leaves((new.params, new.alpha, metrics['val_loss']))
  if process_id == 0:
    np.savez(out, *[np.asarray(x.addressable_data(0)) for x in leaves])
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
