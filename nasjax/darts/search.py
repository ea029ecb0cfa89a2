"""The DARTS search loop: data, jitted steps, progress, checkpoints, history.

`search(config, workdir, dataset)` runs (or resumes) a search and returns a
`SearchResult` (final state, genotype, per-epoch history). With a workdir it
writes:

  checkpoints/          orbax checkpoints (exact resume: state + data position)
  history.json          the per-epoch history (`nasjax.history`)
  tb/                   TensorBoard: losses, accuracies, lr; softmax(alpha) as
                        one chart per edge (CUSTOM SCALARS) and a labelled
                        matrix per epoch (IMAGES)
  genotypes/epoch_NNN.{json,txt} and _normal/_reduce.svg pictures, per epoch
  genotype.{json,txt}, genotype_{normal,reduce}.svg, alpha.png (softmax(alpha)
                        over the epochs), hessian.png (with the Hessian
                        monitor on), results.json: at the end of a
                        completed search only

Without a workdir nothing is written. SIGTERM and Ctrl-C save a checkpoint
before leaving. A non-finite loss or gradient stops the run with
`loop.NonFiniteError`; the state is never updated with it
(`train_state.keep_if_finite`) and no checkpoint is written after it, so the
last one on disk is good (`nasjax.loop`).

Synopsis:

  result = search(config, '/tmp/run', data.load('digits'))
  result.genotype, result.history[-1].alpha['normal']
"""

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import ml_collections
import numpy as np

from nasjax.data import pipeline
from nasjax import augment
from nasjax import config_checks
from nasjax import genotype as genotype_lib
from nasjax import hessian as hessian_lib
from nasjax import history as history_lib
from nasjax import layers
from nasjax import loop
from nasjax import parallel
from nasjax import platform
from nasjax import progress as progress_lib
from nasjax.darts import model as model_lib
from nasjax import optim
from nasjax import bilevel as step_lib
from nasjax.search_spaces import darts_cell
from nasjax.strategies import darts as darts_strategy
from nasjax.train_state import SearchState


def build(config: ml_collections.ConfigDict, dataset: pipeline.Dataset,
          steps_per_epoch: int):
  """Model, space, optimisers, preprocessing and the lr schedule."""
  layers.set_depthwise_impl(platform.depthwise_impl(config.depthwise_impl))
  space = darts_cell.DartsCellSpace(tuple(config.search_space.primitives),
                                    steps=config.search_space.steps)
  model = model_lib.SearchNetwork(space, config.model.channels,
                                  dataset.num_classes, config.model.layers,
                                  config.model.stem_multiplier,
                                  config.model.remat)
  o, a = config.optimizer, config.arch_optimizer
  schedule = optim.cosine_per_epoch(o.learning_rate, o.learning_rate_min,
                                    epochs=config.epochs,
                                    steps_per_epoch=steps_per_epoch)
  tx = optim.weight_optimizer(schedule, momentum=o.momentum,
                              weight_decay=o.weight_decay,
                              clip=o.grad_clip or None,
                              clip_eps=o.grad_clip_eps)
  arch_tx = optim.arch_optimizer(a.learning_rate, b1=a.b1, b2=a.b2,
                                 weight_decay=a.weight_decay)
  prep = augment.make_preprocess(mean=dataset.mean, std=dataset.std,
                                 crop_padding=config.data.crop_padding,
                                 flip=config.data.flip)
  return space, model, tx, arch_tx, prep, schedule


def init_state(model, space, tx, arch_tx, image_shape, seed, mesh):
  k_params, k_alpha, k_state = jax.random.split(jax.random.key(seed), 3)

  def init():
    alpha = model_lib.init_alpha(space, k_alpha)
    x = jax.numpy.zeros((2,) + tuple(image_shape))
    variables = model.init(k_params, x, alpha, train=False)
    return SearchState.create(params=variables['params'],
                              batch_stats=variables['batch_stats'],
                              alpha=alpha, tx=tx, arch_tx=arch_tx, rng=k_state)

  return parallel.jit_init(init, mesh)()


@dataclasses.dataclass
class SearchResult:
  """What a search returns.

  Attributes:
    status: 'completed' or 'interrupted' (SIGTERM; a checkpoint was saved).
    genotype: derived from the final alpha; after an early stop
      (`config.hessian.early_stop`), the genotype of the epoch it returned
      to (summary['early_stop']).
    history: one `history.EpochRecord` per epoch (softmax(alpha) per edge,
      mean losses and accuracies, the genotype at that epoch), including the
      epochs of earlier runs of a resumed workdir.
    state: the final `SearchState` (weights, alpha, optimiser states), on
      the devices.
    space: the search space (edges, primitives).
    summary: steps, timings, devices, last epoch's metrics (results.json).
    workdir: where files went, or None.
  """
  status: str
  genotype: genotype_lib.Genotype
  history: list[history_lib.EpochRecord]
  state: SearchState
  space: darts_cell.DartsCellSpace
  summary: dict
  workdir: str | None = None

  @property
  def alpha(self) -> dict[str, np.ndarray]:
    """softmax(alpha) of the final state: cell type -> [edges, ops]."""
    return history_lib.softmax(parallel.to_host(self.state.alpha))


def _tensorboard(workdir, space):
  """One writer; a multi-line chart per edge (every op's softmax weight)."""
  from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  writer = SummaryWriter(os.path.join(workdir, 'tb'))
  layout = {}
  for t in ('normal', 'reduce'):
    layout[f'alpha {t}'] = {
        f'node {i} <- input {j}': ['Multiline', [
            f'alpha_{t}/node{i}_input{j}/{op}' for op in space.primitives]]
        for i, j in space.edges()}
  writer.add_custom_scalars(layout)
  return writer


def _write_alpha(writer, record, space):
  for t, w in record.alpha.items():
    for e, (i, j) in enumerate(space.edges()):
      for k, op in enumerate(space.primitives):
        writer.add_scalar(f'alpha_{t}/node{i}_input{j}/{op}', float(w[e, k]),
                          record.step)
  from nasjax import plot  # pylint: disable=g-import-not-at-top
  writer.add_figure('alpha', plot.alpha_matrix(record, space), record.step,
                    close=True)


@loop.releases_workdirs
def search(config: ml_collections.ConfigDict, workdir: str | None,
           dataset: pipeline.Dataset, *,
           callback: Callable[[list[history_lib.EpochRecord]], None]
           | None = None,
           progress: str = 'auto') -> SearchResult:
  """Runs (or, in a used workdir, resumes) a DARTS search.

  Args:
    config: a darts_search config (`nasjax.configs.search`).
    workdir: where checkpoints, TensorBoard events, genotypes and the
      history go; None: nothing is written and nothing can be resumed.
    dataset: its training split is divided into the weight and alpha halves.
    callback: called with the history (a list of `EpochRecord`) after every
      epoch, e.g. to plot it live.
    progress: 'auto', 'bar', 'lines' or 'none' (`nasjax.progress`).

  Raises `errors.UserError` (config, data, workdir, a workdir holding a run
  with another config) before any work, and `loop.NonFiniteError` if a step
  is not finite. Only a completed search writes `genotype.*`, `alpha.png`
  and `results.json`.
  """
  report = progress_lib.Progress(progress, 'search')
  mesh = parallel.make_mesh(config.num_devices or None)
  config_checks.check_search_config(config, mesh.devices.size)
  pipeline.check_image_shape(dataset, config.data.image_shape)
  train, val, per_epoch, total_steps = pipeline.bilevel_halves(
      dataset.train, config.data.train_portion, config.batch_size,
      config.epochs, config.max_steps)
  if workdir is not None:
    loop.prepare_workdir(workdir)
  space, model, tx, arch_tx, prep, schedule = build(config, dataset, per_epoch)

  state = init_state(model, space, tx, arch_tx, dataset.image_shape,
                     config.seed, mesh)
  opened = loop.open_run(workdir, state, mesh, keep=config.keep_checkpoints,
                         expect={'config': config.to_dict()}, report=report,
                         what='search', total_steps=total_steps)
  state, start, ckpt, records = (opened.state, opened.start,
                                 opened.checkpointer, opened.history)

  is_weights = config.search.arch_mode == 'weights_only'
  family = step_lib.family_of(model, prep)
  step_fn = step_lib.compiled_step(
      family, mesh,
      arch_mode=config.search.arch_mode, learning_rate=schedule,
      staged=config.search.staged, fd_radius=config.search.fd_radius,
      second_order_impl=config.search.second_order_impl,
      arch_regularizer=darts_strategy.beta_decay_of(config, per_epoch))

  pidx, pcount = parallel.process_info()
  batch_args = dict(process_index=pidx, process_count=pcount,
                    start_step=start)
  train_it = pipeline.batches(train, config.batch_size, seed=config.seed,
                              **batch_args)
  val_it = pipeline.batches(val, config.batch_size, seed=config.seed + 1,
                            **batch_args)

  monitor = hessian_lib.SearchMonitor(config.hessian, family, mesh, train,
                                      val, config.batch_size, config.seed)
  early = monitor.early

  writer = None
  if workdir is not None and pidx == 0 and not opened.previous:
    writer = _tensorboard(workdir, space)
    os.makedirs(os.path.join(workdir, 'genotypes'), exist_ok=True)

  def meta_for(st):
    step = int(jax.device_get(st.step))
    g = genotype_lib.from_alpha(parallel.to_host(st.alpha), space)
    return {'step': step, 'epoch': step // per_epoch,
            'data_position': {'train_step': step, 'val_step': step},
            'genotype': genotype_lib.to_dict(g),
            'config': config.to_dict()}

  def end_of_epoch(st, epoch, means):
    means = {**means, **monitor.measure(st, epoch)}
    alpha = parallel.to_host(st.alpha)
    g = genotype_lib.from_alpha(alpha, space)
    record = history_lib.EpochRecord(
        epoch=epoch, step=int(jax.device_get(st.step)), train=dict(means),
        alpha=history_lib.softmax(alpha), genotype=g)
    history_lib.add(records, record)
    report.message(
        f'epoch {epoch}: ' + ' '.join(f'{k}={v:.4f}' for k, v in
                                      sorted(means.items())) +
        f' | genotype {genotype_lib.to_notation(g)}')
    if workdir is not None and pidx == 0:
      genotype_lib.write_files(
          g, os.path.join(workdir, 'genotypes', f'epoch_{epoch:03d}'))
      history_lib.save(workdir, records)
    if writer is not None:
      for k, v in means.items():
        writer.add_scalar(f'epoch/{k}', v, record.step)
      _write_alpha(writer, record, space)
      writer.flush()
    if callback is not None:
      callback(list(records))
    return monitor.should_stop(records, epoch, report)

  one_step = step_lib.feed(step_fn, mesh, train_it, val_it, is_weights)

  what = (f'the {config.search.arch_mode} search step (C={config.model.channels}'
          f', {config.model.layers} cells, batch {config.batch_size} on '
          f'{mesh.devices.size} {jax.default_backend().upper()} device'
          f'{"s" if mesh.devices.size > 1 else ""})')
  staged = hasattr(step_fn, 'precompile')
  if staged and start < total_steps:
    report.compiling(what)
    batch = parallel.abstract_batch(
        {'image': train.images, 'label': train.labels}, config.batch_size,
        mesh)
    step_fn.precompile(state, batch, batch,
                       workers=config.search.compile_workers)
    report.compiled(what)

  t0 = time.time()
  result = loop.run(state, start=start, total_steps=total_steps,
                    steps_per_epoch=per_epoch, step=one_step,
                    checkpointer=ckpt, meta_for=meta_for,
                    end_of_epoch=end_of_epoch, writer=writer,
                    learning_rate=schedule,
                    log_every=config.log_every_steps,
                    checkpoint_every=config.checkpoint_every_steps,
                    report=report, resumed_meta=opened.meta,
                    first_step_compiles=None if staged else what)
  state = result.state
  if writer is not None:
    writer.close()

  alpha = parallel.to_host(state.alpha)
  g = genotype_lib.from_alpha(alpha, space)
  if early:  # DARTS-ES returns the architecture of an earlier epoch.
    g = next(r.genotype for r in records if r.epoch == early['epoch'])
  summary = {**result.summary(total_steps, t0, mesh.devices.size),
             'genotype': genotype_lib.to_dict(g),
             **({'early_stop': early} if early else {})}
  if opened.previous:
    summary = opened.previous
    g = genotype_lib.from_dict(summary['genotype'])
  out = SearchResult(result.status, g, records, state, space, summary, workdir)
  if (result.status != 'completed' or workdir is None or pidx != 0 or
      opened.previous):
    return out  # Not finished (or nowhere to write): no final files.
  genotype_lib.write_files(g, os.path.join(workdir, 'genotype'))
  if records:
    from nasjax import plot  # pylint: disable=g-import-not-at-top
    plot.save(plot.alpha_history(records, space),
              os.path.join(workdir, 'alpha.png'))
    if any(hessian_lib.METRICS[0] in r.train for r in records):
      plot.save(plot.hessian(records, early.get('epoch')),
                os.path.join(workdir, 'hessian.png'))
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return out
