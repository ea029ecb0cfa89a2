"""The benchmarks' search problem: the DARTS CIFAR-10 search at a given size.

The paper's optimisers and schedules, the 8 DARTS ops (or `primitives`),
random 32x32x3 uint8 images with 10 classes, fixed training and validation
batches (data time excluded, as in the reference measurements of
docs/reference_figures.md 4), the state replicated and the batches sharded
over every device. Imported by the benchmark scripts after they have set
XLA_FLAGS (it imports JAX).
"""

import functools
import os
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from nasjax import augment
from nasjax import layers
from nasjax import parallel
from nasjax.darts import model as model_lib
from nasjax import optim
from nasjax.search_spaces import DartsCellSpace
from nasjax.train_state import SearchState


class Problem(NamedTuple):
  net: model_lib.SearchNetwork
  schedule: Any            # step -> weight learning rate
  preprocess: Any          # (uint8 images, rng, train) -> float images
  mesh: jax.sharding.Mesh
  state: SearchState       # replicated
  train_batch: dict        # sharded
  val_batch: dict          # sharded


def make(channels: int, num_layers: int, batch: int, *,
         primitives: Sequence[str] = (), remat: bool = True,
         depthwise_impl: str = 'shift') -> Problem:
  layers.set_depthwise_impl(depthwise_impl)
  space = (DartsCellSpace(primitives=tuple(primitives)) if primitives
           else DartsCellSpace())
  net = model_lib.SearchNetwork(space, channels, 10, num_layers, remat=remat)
  sched = optim.cosine_per_epoch(0.025, 0.001, epochs=50, steps_per_epoch=391)
  tx = optim.weight_optimizer(sched, momentum=0.9, weight_decay=3e-4, clip=5.0)
  arch_tx = optim.arch_optimizer(3e-4, b1=0.5, b2=0.999, weight_decay=1e-3)
  alpha = model_lib.init_alpha(space, jax.random.key(1))
  v = jax.jit(functools.partial(net.init, train=False))(
      jax.random.key(0), np.zeros((2, 32, 32, 3), np.float32), alpha)
  state = SearchState.create(params=v['params'], batch_stats=v['batch_stats'],
                             alpha=alpha, tx=tx, arch_tx=arch_tx,
                             rng=jax.random.key(2))
  prep = augment.make_preprocess(mean=(0.49, 0.48, 0.45),
                                 std=(0.25, 0.24, 0.26), crop_padding=4,
                                 flip=True)
  rs = np.random.RandomState(0)
  mk = lambda: {'image': rs.randint(0, 256, (batch, 32, 32, 3)).astype(
      np.uint8), 'label': rs.randint(0, 10, (batch,)).astype(np.int32)}
  mesh = parallel.make_mesh()
  return Problem(net, sched, prep, mesh, parallel.replicate(state, mesh),
                 parallel.shard_batch(mk(), mesh),
                 parallel.shard_batch(mk(), mesh))


def host_cpu() -> str:
  """The host CPU as /proc/cpuinfo names it, with family/model and cores.

  Recorded with every measurement: on one CPU device the C=8 steps ran
  1.1-1.3x faster than on two on one 2-core machine and 1.3x slower on
  another (benchmarks/README.md), so a figure means little without the machine.
  """
  fields = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
  except OSError:
    return 'unknown'
  return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')}"
          f" model {fields.get('model', '?')}), {os.cpu_count()} cores")
