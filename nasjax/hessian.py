"""The Hessian of the architecture loss in alpha: its extreme eigenvalues,
exactly, and RobustDARTS's early stop on the largest one.

Zela et al. (ICLR 2020, "Understanding and Robustifying DARTS") observed that
the dominant eigenvalue of the Hessian of the validation loss with respect to
alpha grows before a DARTS search collapses onto parameter-free operations,
and stop the search when it does (DARTS-ES). This module computes it without
building the Hessian: Hessian-vector products by forward-over-reverse
differentiation (`jax.jvp` of `jax.grad`, exact to float round-off), fed to
the Lanczos iteration, whose tridiagonal matrix's eigenvalues (Ritz values)
approach the Hessian's extreme eigenvalues within a few tens of products,
and equal all of them after as many products as alpha has entries.

Two losses (`OBJECTIVES`):

  'val'       L_val(w, alpha), the weights held fixed: RobustDARTS's (their
              `Analyzer.compute_Hw`), for first and second order alike;
  'unrolled'  L_val(w'(alpha), alpha), w' the weight step `tx` would take now
              at alpha (`bilevel.virtual_step`): the function whose gradient
              the exact second-order search descends. Its Hessian-vector
              products differentiate through the training gradient, a third
              derivative of the network.

Both are on one validation batch, BatchNorm in training mode (batch
statistics), as every loss of the search. RobustDARTS adds the alpha L2
coefficient to the diagonal; here the eigenvalues are the loss's own (add
the arch optimiser's weight decay to compare).

Synopsis:

  eig = jax.jit(functools.partial(top_eigenvalues, family=family,
                                  objective='val', num_iterations=20))
  values = eig(state, val_batch, train_batch, key)   # descending
  stop = robust_darts_stop(history_of_largest, window=5, k=5)
"""

import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from nasjax import bilevel
from nasjax import parallel
from nasjax.train_state import SearchState

OBJECTIVES = ('val', 'unrolled')


def alpha_loss(state: SearchState, val_batch, train_batch=None, *, family,
               objective: str = 'val') -> Callable:
  """alpha -> the loss `objective` at the state's weights (see the module)."""
  if objective not in OBJECTIVES:
    raise ValueError(f'Unknown Hessian objective {objective!r}; valid: '
                     f'{OBJECTIVES}.')
  val_in = family.prepare(state.rng, state.step, 1, val_batch,
                          state.carry.get('val'))
  if objective == 'val':
    return lambda alpha: family.loss(state.params, state.batch_stats, alpha,
                                     val_in)[0]
  if train_batch is None:
    raise ValueError("objective='unrolled' needs a training batch.")
  train_in = family.prepare(state.rng, state.step, 0, train_batch,
                            state.carry.get('train'))

  def unrolled(alpha):  # What `bilevel.arch_gradient` differentiates.
    w2 = bilevel.virtual_step(state, alpha, train_in, model=family)
    return family.loss(w2, state.batch_stats, alpha, val_in)[0]

  return unrolled


def hvp(f: Callable, x, v):
  """The Hessian of scalar `f` at `x` times `v` (pytrees like `x`), exactly:
  the directional derivative of its gradient (forward over reverse)."""
  return jax.jvp(jax.grad(f), (x,), (v,))[1]


def lanczos(matvec: Callable[[jax.Array], jax.Array], v0: jax.Array,
            num_iterations: int, key: jax.Array | None = None) -> jax.Array:
  """The Ritz values of `num_iterations` Lanczos steps from `v0`, descending.

  `matvec` is a symmetric linear map of flat vectors like `v0`. Every new
  vector is orthogonalised twice against all earlier ones (full
  reorthogonalisation: without it, rounding brings back converged vectors
  and repeats eigenvalues). When the Krylov space closes early (the
  residual vanishes: a start vector in an invariant subspace, or repeated
  eigenvalues), the iteration continues from a random vector orthogonal to
  all earlier ones (`key`), so `num_iterations = v0.size` yields every
  eigenvalue. The extreme Ritz values approach the extreme eigenvalues
  first.
  """
  n = v0.shape[0]
  m = int(num_iterations)
  if not 1 <= m <= n:
    raise ValueError(f'num_iterations must be in [1, {n}] (the dimension), '
                     f'got {num_iterations}.')
  key = jax.random.key(0) if key is None else key
  tol = jnp.finfo(v0.dtype).eps ** 0.5

  def orthogonalise(w, basis):
    for _ in range(2):
      w = w - basis.T @ (basis @ w)
    return w

  def body(j, carry):
    basis, diag, off, v = carry
    basis = basis.at[j].set(v)
    w = matvec(v)
    a = jnp.vdot(v, w)
    w = orthogonalise(w, basis)
    b = jnp.linalg.norm(w)
    fresh = orthogonalise(
        jax.random.normal(jax.random.fold_in(key, j), (n,), v0.dtype), basis)
    scale = jnp.maximum(jnp.abs(a), 1.0)
    broke = b <= tol * scale
    v_next = jnp.where(broke, fresh / jnp.linalg.norm(fresh), w / b)
    return (basis, diag.at[j].set(a),
            off.at[j].set(jnp.where(broke, 0.0, b)), v_next)

  init = (jnp.zeros((m, n), v0.dtype), jnp.zeros((m,), v0.dtype),
          jnp.zeros((m,), v0.dtype), v0 / jnp.linalg.norm(v0))
  _, diag, off, _ = jax.lax.fori_loop(0, m, body, init)
  tri = jnp.diag(diag) + jnp.diag(off[:-1], 1) + jnp.diag(off[:-1], -1)
  return jnp.linalg.eigvalsh(tri)[::-1]


def top_eigenvalues(state: SearchState, val_batch, train_batch=None,
                    key: jax.Array | None = None, *, family,
                    objective: str = 'val', num_iterations: int = 20):
  """The Ritz values (descending) of the Hessian of `objective` in alpha
  after `num_iterations` Lanczos steps (capped at alpha's size, where they
  are the exact eigenvalues); the first is the dominant eigenvalue
  RobustDARTS tracks. Jit with `family`, `objective`, `num_iterations`
  bound."""
  f = alpha_loss(state, val_batch, train_batch, family=family,
                 objective=objective)
  flat, unravel = ravel_pytree(state.alpha)
  matvec = lambda v: ravel_pytree(hvp(f, state.alpha, unravel(v)))[0]
  key = jax.random.key(0) if key is None else key
  k_start, k_restart = jax.random.split(key)
  v0 = jax.random.normal(k_start, flat.shape, flat.dtype)
  return lanczos(matvec, v0, min(num_iterations, flat.size), k_restart)


def robust_darts_stop(eigenvalues: Sequence[float], *, window: int = 5,
                      k: int = 5, ratio: float = 0.75,
                      start_epoch: int = 0) -> int | None:
  """The epoch DARTS-ES returns to, or None to go on.

  `eigenvalues[i]` is the dominant eigenvalue measured after epoch i.
  RobustDARTS (Zela et al. 2020, section 4.3) smooth them by the mean over
  a window of `window` epochs centred on each epoch, and stop at epoch i
  when lambda_bar(i - k) / lambda_bar(i) < `ratio`, returning the
  architecture of epoch i - k. Epoch i's centred mean needs the values up
  to epoch i + window // 2, so the rule is checked for the latest epoch
  whose window is complete; epochs i - k before `start_epoch` are not
  returned to (their `es_start_epoch`).
  """
  if window < 1 or window % 2 == 0:
    raise ValueError(f'The eigenvalue window must be odd (centred), got '
                     f'{window}.')
  half = window // 2
  latest = len(eigenvalues) - 1 - half
  if latest - k < max(start_epoch, half):
    return None
  mean = lambda i: sum(eigenvalues[i - half:i + half + 1]) / (2 * half + 1)
  now, before = mean(latest), mean(latest - k)
  if not (math.isfinite(now) and math.isfinite(before)) or now <= 0:
    return None
  return latest - k if before / now < ratio else None


METRICS = ('hessian_max_eigenvalue', 'hessian_eigenvalue_2',
           'hessian_eigenvalue_3', 'hessian_min_eigenvalue')


class Monitor:
  """The eigenvalues a search loop records after an epoch.

  `monitor(state, val_batch, train_batch, epoch)` -> {name: float} (the
  `METRICS`: the three largest Ritz values and the smallest), from
  `num_iterations` Hessian-vector products on the given (sharded) batches;
  the Lanczos start vector depends on the epoch only. The train batch is
  used by the 'unrolled' objective only.
  """

  def __init__(self, family, mesh, *, objective: str = 'val',
               num_iterations: int = 20):
    if objective not in OBJECTIVES:
      raise ValueError(f'Unknown Hessian objective {objective!r}; valid: '
                       f'{OBJECTIVES}.')
    self._fn = parallel.jit_stage(
        functools.partial(top_eigenvalues, family=family, objective=objective,
                          num_iterations=num_iterations),
        mesh, batch_argnums=(1, 2))

  def __call__(self, state, val_batch, train_batch, epoch: int) -> dict:
    values = parallel.to_host(self._fn(state, val_batch, train_batch,
                                    jax.random.key(epoch)))
    picks = (values[0], values[min(1, len(values) - 1)],
             values[min(2, len(values) - 1)], values[-1])
    return {name: float(v) for name, v in zip(METRICS, picks)}


class SearchMonitor:
  """A search loop's use of its config's `hessian` section
  (`nasjax.configs.common.hessian`).

  `measure(state, epoch)`: the `METRICS` after the epochs the section asks
  for ({} after the others), on one validation and one training batch fixed
  for the whole run (the first of their splits' sequences of seed
  `seed + 7`), so that the trajectory is not batch noise. `stop_epoch(
  records)`: DARTS-ES's epoch to return to, given the history so far, when
  the section's `early_stop` is on and the rule fires; else None.
  `should_stop(records, epoch, report)`: the same as a loop's answer to
  `loop.run`, noting the stop in `early` ({'epoch', 'stopped_after_epoch'})
  and in the report.
  """

  def __init__(self, cfg, family, mesh, train, val, batch_size: int,
               seed: int):
    from nasjax.data import pipeline  # pylint: disable=g-import-not-at-top
    self.cfg = cfg
    self.early = {}
    self.on = cfg.every_epochs > 0
    if not self.on:
      return
    self._monitor = Monitor(family, mesh, objective=cfg.objective,
                            num_iterations=cfg.iterations)
    pidx, pcount = parallel.process_info()

    def first(split):
      _, batch = next(pipeline.batches(split, batch_size, seed=seed + 7,
                                       process_index=pidx,
                                       process_count=pcount))
      return parallel.shard_batch(batch, mesh)

    self._val, self._train = first(val), first(train)

  def measure(self, state, epoch: int) -> dict:
    if not self.on or (epoch + 1) % self.cfg.every_epochs:
      return {}
    return self._monitor(state, self._val, self._train, epoch)

  def stop_epoch(self, records) -> int | None:
    if not (self.on and self.cfg.early_stop):
      return None
    values = [r.train.get(METRICS[0], math.nan) for r in records]
    return robust_darts_stop(values, window=self.cfg.window, k=self.cfg.k,
                             ratio=self.cfg.ratio,
                             start_epoch=self.cfg.start_epoch)

  def should_stop(self, records, epoch: int, report) -> bool:
    stop = self.stop_epoch(records)
    if stop is None:
      return False
    self.early.update(epoch=stop, stopped_after_epoch=epoch)
    report.message(f'early stop (DARTS-ES): the dominant Hessian eigenvalue '
                   f'grew; returning to epoch {stop}')
    return True
