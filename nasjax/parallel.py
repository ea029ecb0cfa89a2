"""Everything that touches devices: the mesh, shardings, and jitted steps.

Data parallelism with global arrays (the current form of "pmap"): one 1-D mesh
over every device of every host, axis 'data'. The batch is sharded along its
first axis; the search state (weights, BatchNorm statistics, alpha, both
optimiser states) is replicated, except a language model's carried hidden
states, which are sharded by rows like the batch (`state_shardings`). Steps are plain `jax.jit` functions with
those shardings: XLA inserts the cross-device reductions, so a loss mean or a
BatchNorm statistic over a sharded batch is already the global one, and the
step equals the single-device step on the same global batch.

Synopsis:

  mesh = make_mesh()
  step = jit_step(fn, mesh, num_batches=2)          # fn(state, b1, b2)
  step = staged_search_step(stage_jitter(mesh), ...)  # several programs
  state = replicate(state, mesh)
  batch = shard_batch(host_batch, mesh)             # this host's rows
"""

import functools
import inspect
import os
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from nasjax import errors

DATA_AXIS = 'data'

# XLA:CPU options for the binaries and benchmarks (`add_xla_flags`). XLA's
# newer MLIR fusion emitters compiled a C=8, 5-cell search step with 1.3 GiB
# more peak memory than the classic LLVM emitters and ran it no faster
# (benchmarks/README.md). Only the CPU backend reads them.
XLA_CPU_FLAGS = ('--xla_cpu_use_fusion_emitters=false',)


# XLA:CPU runs the thunks of every program on one pool of threads per
# process ("XLAEigen"), of as many threads as cores unless $NPROC says
# otherwise. A collective holds its pool thread while it waits for the other
# devices, so with several CPU devices on a 2-core machine one device's
# waiting collective can hold a thread that the device it waits for needs:
# a deadlock, which XLA ends after 40 s by aborting the process (the
# probable cause of 1 abort in about 17,000 two-device steps:
# benchmarks/README.md, "Known problem").
# More threads than cores leave spare threads for the other devices; they
# cost nothing measurable (idle unless a collective waits), though that
# they prevent the rare hang is not shown.
CPU_THREADS_PER_DEVICE = 8


def size_cpu_thread_pool(devices: int) -> None:
  """Sets $NPROC for `devices` XLA:CPU devices, unless it is set already.

  Process configuration, for binaries: before JAX initialises its backends.
  """
  if devices > 1 and 'NPROC' not in os.environ:
    os.environ['NPROC'] = str(max(os.cpu_count() or 1,
                                  CPU_THREADS_PER_DEVICE * devices))


def add_xla_flags(flags: Sequence[str] = XLA_CPU_FLAGS) -> None:
  """Appends `flags` to $XLA_FLAGS, except those whose name is already set.

  Process configuration, for binaries: it must run before JAX initialises its
  backends (the first `jax.devices()` or computation).
  """
  now = os.environ.get('XLA_FLAGS', '')
  new = [f for f in flags if f.split('=')[0] not in now]
  os.environ['XLA_FLAGS'] = ' '.join([now] + new).strip()


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D data-parallel mesh over all (or the first `num_devices`) devices."""
  devices = jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise errors.ConfigError(f'Asked for {num_devices} devices (config.'
                               f'num_devices); {len(devices)} available.')
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """Sharded along `axis` (the batch axis; 1 for a stack of batches)."""
  return NamedSharding(mesh, P(*(None,) * axis, DATA_AXIS))


def process_info() -> tuple[int, int]:
  """(this host's index, number of hosts), for the per-host data split."""
  return jax.process_index(), jax.process_count()


def check_batch(global_batch: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if global_batch % n:
    raise errors.ConfigError(
        f'Global batch size {global_batch} must be divisible by the number '
        f'of devices ({n}).')


def padded_batch(global_batch: int, mesh: Mesh) -> int:
  """`global_batch` rounded up to a multiple of the device count.

  For evaluation, whose last batch is padded and masked anyway
  (`pipeline.eval_batches`): any eval batch size works on any mesh.
  """
  n = mesh.devices.size
  return -(-global_batch // n) * n


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh,
                axis: int = 0) -> dict[str, Any]:
  """This host's rows of the global batch -> global arrays sharded on 'data'.

  `axis`: the batch axis (1 for [N, batch, ...] stacks of N batches).
  """
  sharding = batch_sharding(mesh, axis)

  def put(x):
    global_shape = list(x.shape)
    global_shape[axis] *= jax.process_count()
    global_shape = tuple(global_shape)
    check_batch(global_shape[axis], mesh)
    return jax.make_array_from_process_local_data(sharding, x, global_shape)

  return jax.tree.map(put, batch)


def abstract_batch(examples: dict[str, np.ndarray], global_batch: int,
                   mesh: Mesh) -> dict[str, jax.ShapeDtypeStruct]:
  """What `shard_batch` makes of `global_batch` rows of `examples`, unfilled.

  `examples`: arrays with one row per example (e.g. a split's images and
  labels). Returns `jax.ShapeDtypeStruct`s with the batch sharding, to
  compile steps before the data arrive (`staged_search_step`'s `precompile`).
  """
  check_batch(global_batch, mesh)
  return {k: jax.ShapeDtypeStruct((global_batch,) + v.shape[1:], v.dtype,
                                  sharding=batch_sharding(mesh))
          for k, v in examples.items()}


def replicate(tree, mesh: Mesh):
  """Host values (identical on every host) -> replicated global arrays.

  Built shard by shard from the local value, so no host-to-host transfer or
  check is needed on multi-host meshes.
  """
  sharding = replicated(mesh)

  def put(x):
    if jax.dtypes.issubdtype(getattr(x, 'dtype', None), jax.dtypes.prng_key):
      data = put(jax.random.key_data(x))
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

  return jax.tree.map(put, tree)


def state_shardings(state, mesh: Mesh):
  """The shardings of a state: replicated, except the hidden states a
  language model carries from window to window (`state.carry`, [rows, units]
  per stream), which are sharded by rows with the batch they belong to."""
  rep = replicated(mesh)
  out = jax.tree.map(lambda _: rep, state)
  if getattr(state, 'carry', None):
    out = out.replace(carry=jax.tree.map(lambda _: batch_sharding(mesh),
                                         state.carry))
  return out


def place(state, mesh: Mesh):
  """A replicated state (or one of host values) with `state_shardings`: its
  carried hidden states sharded by rows. Each host cuts its rows from its
  full copy, so nothing crosses hosts."""
  if not getattr(state, 'carry', None):
    return state
  sharding = batch_sharding(mesh)

  def put(x):
    host = np.asarray(x.addressable_data(0) if isinstance(x, jax.Array)
                      else x)
    return jax.make_array_from_callback(host.shape, sharding,
                                        lambda idx: host[idx])

  return state.replace(carry=jax.tree.map(put, state.carry))


def jit_step(fn: Callable, mesh: Mesh, *, num_batches: int = 1,
             donate: bool = True, batch_axis: int = 0,
             state=None) -> Callable:
  """jit(fn(state, *batches)) with the state replicated (or, given a `state`
  to take them from, with its `state_shardings`) and batches sharded along
  `batch_axis`; the metrics come back replicated."""
  rep, data = replicated(mesh), batch_sharding(mesh, batch_axis)
  st = rep if state is None else state_shardings(state, mesh)
  return jax.jit(fn, in_shardings=(st,) + (data,) * num_batches,
                 out_shardings=(st, rep),
                 donate_argnums=(0,) if donate else ())


def jit_stage(fn: Callable, mesh: Mesh, *, batch_argnums: Sequence[int] = (),
              donate_argnums: Sequence[int] = (), light: bool = False
              ) -> Callable:
  """jit(fn) with the positional args in `batch_argnums` sharded, the rest
  and all outputs replicated: one program of a staged step
  (`nasjax.bilevel.staged_search_step`).

  `light`: the program only updates pytrees (optimiser steps, selects), one
  small fused loop per leaf. On a CPU mesh it is compiled without LLVM's
  optimisations (`xla_backend_optimization_level=0`): XLA:CPU spends most of
  its compile time optimising those ~300 kernels (the C=8 virtual step: 8.7 s
  -> 1.8 s, benchmarks/README.md), while running them takes milliseconds either
  way. Other backends compile it as usual.
  """
  params = inspect.signature(fn).parameters.values()
  num_args = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                 for p in params)
  rep, data = replicated(mesh), batch_sharding(mesh)
  in_shardings = tuple(data if i in batch_argnums else rep
                       for i in range(num_args))
  return jax.jit(fn, in_shardings=in_shardings, out_shardings=rep,
                 donate_argnums=tuple(donate_argnums),
                 compiler_options=_quick_compile(mesh) if light else None)


def _quick_compile(mesh: Mesh) -> dict[str, Any] | None:
  """XLA options for a program whose compile time matters, not its speed."""
  if mesh.devices.flat[0].platform == 'cpu':
    return {'xla_backend_optimization_level': 0}
  return None


def stage_jitter(mesh: Mesh) -> Callable:
  """`jit_stage` bound to `mesh`, the `jit_stage` argument of staged steps."""
  return functools.partial(jit_stage, mesh=mesh)


def jit_init(fn: Callable, mesh: Mesh) -> Callable:
  """jit an init function so its outputs are created replicated.

  It runs once, on a dummy batch: on a CPU mesh it is compiled without
  LLVM's optimisations, like the `light` stages (the C=8 search network's
  init compiled in 14.5 s instead of 47 s and ran in 0.07 s instead of
  0.03 s; benchmarks/README.md).
  """
  return jax.jit(fn, out_shardings=replicated(mesh),
                 compiler_options=_quick_compile(mesh))


def to_host(tree):
  """Fetches (replicated) arrays to host numpy."""
  return jax.tree.map(np.asarray, jax.device_get(tree))
