"""Training a discrete network from scratch: the loop, evaluation, results.

`train(config, workdir, dataset, genotype)` runs (or resumes) the DARTS
evaluation protocol for a genotype, or ENAS's final training for an ENAS arc
(`EnasArc`, with an 'enas_*' preset: `nasjax.enas.final`), and returns a
`TrainResult` (test accuracy, parameter count, per-epoch history, final
state). With a workdir it writes:

  checkpoints/        orbax checkpoints (exact resume: state + data position)
  tb/                 TensorBoard events: train loss/accuracy, lr, drop-path
                      probability, test loss/accuracy
  genotype.{json,txt} and genotype_{normal,reduce}.svg: what was trained
                      (an ENAS arc: its JSON, arc string and, for micro,
                      the cell pictures)
  history.json        per-epoch training means and test metrics
  results.json        test accuracy, parameter counts (with and without the
                      auxiliary head), steps, wall time

Training uses the whole training split; evaluation the whole test split (in
inference mode, every example exactly once). SIGTERM / Ctrl-C save first; a
non-finite loss stops the run and keeps the last good checkpoint
(`nasjax.loop`).

Synopsis:

  result = train(config, '/tmp/run', data.load('cifar10', path),
                 genotype.load('DARTS_V2'))
  result.test_accuracy
"""

import dataclasses
import functools
import json
import os
import time
from typing import Callable

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from nasjax.data import pipeline
from nasjax import augment
from nasjax import config_checks
from nasjax import errors
from nasjax import genotype as genotype_lib
from nasjax import history as history_lib
from nasjax import layers
from nasjax import loop
from nasjax import parallel
from nasjax import platform
from nasjax import progress as progress_lib
from nasjax import optim
from nasjax.enas import final as enas_final
from nasjax.enas import step as enas_step
from nasjax.final import network
from nasjax.final import step as step_lib
from nasjax.search_spaces import enas as enas_space
from nasjax.search_spaces.nb201 import encoding as nb201_encoding
from nasjax.train_state import TrainState

NETWORKS = ('cifar', 'imagenet', 'enas', 'nb201')


class Nb201Final(nn.Module):
  """NAS-Bench-201's network of one cell (`search_spaces.nb201.networks.
  Network`) behind the retraining loop's call: (logits, no auxiliary
  logits) in training, no drop-path."""
  cell: tuple[int, ...]
  num_classes: int = 10
  channels: int = 16
  cells_per_stage: int = 5

  @nn.compact
  def __call__(self, x, train: bool, drop_path_prob=None):
    del drop_path_prob
    from nasjax.search_spaces.nb201 import networks  # pylint: disable=g-import-not-at-top
    logits = networks.Network(tuple(self.cell), self.num_classes,
                              self.channels, self.cells_per_stage,
                              name='network')(x, train)
    return (logits, None) if train else logits


def enas_arc_of(g) -> enas_space.EnasArc:
  """A DARTS genotype of ENAS's micro ops (DARTS searched on the ENAS micro
  space: `darts_search.py:enas_micro`) as the ENAS micro arc ENAS's final
  network takes."""
  space = enas_space.MicroSpace(num_nodes=len(g.normal) // 2)
  try:
    return enas_space.EnasArc(space, space.from_genotype(g))
  except ValueError as e:
    raise errors.ConfigError(
        f'config.genotype is a DARTS genotype that is not an ENAS micro cell '
        f'({e}); retrain it with a DARTS preset (model.kind cifar).'
    ) from None


def make_model(config: ml_collections.ConfigDict, arch, num_classes: int):
  """The discrete network of `arch`: a DARTS `Genotype` in NetworkCIFAR or
  NetworkImageNet, or an `EnasArc` in ENAS's final network (`train` turns
  a genotype of ENAS's micro ops into one: `enas_arc_of`)."""
  m = config.model
  if m.kind not in NETWORKS:
    raise ValueError(f'Unknown model.kind {m.kind!r}; valid: {NETWORKS}.')
  if isinstance(arch, genotype_lib.RecurrentGenotype) or (
      isinstance(arch, enas_space.EnasArc) and
      isinstance(arch.space, enas_space.RecurrentSpace)):
    raise errors.ConfigError(
        f'config.genotype is a recurrent cell ({arch}); a recurrent cell is '
        'retrained in the language model: --config=experiments/configs/'
        'lm_train.py:ptb (or :synthetic) with the same --config.genotype.')
  is_nb201 = isinstance(arch, nb201_encoding.Nb201Cell)
  if is_nb201 != (m.kind == 'nb201'):
    want = ('a NAS-Bench-201 cell needs an nb201 preset (model.kind nb201)'
            if is_nb201 else 'an nb201 preset needs a NAS-Bench-201 cell '
            '(its string, or the cell.txt of a search)')
    raise errors.ConfigError(f'config.model.kind is {m.kind!r}, but {want}.')
  if is_nb201:
    return Nb201Final(tuple(arch), num_classes, m.channels, m.layers)
  is_enas = isinstance(arch, enas_space.EnasArc)
  if is_enas != (m.kind == 'enas'):
    want = ('an ENAS arc needs an ENAS preset (model.kind enas)' if is_enas
            else "a DARTS genotype needs model.kind 'cifar' or 'imagenet'")
    raise errors.ConfigError(f'config.model.kind is {m.kind!r}, but {want}.')
  if is_enas:
    try:
      return enas_final.network(arch, channels=m.channels,
                                num_layers=m.layers or None,
                                num_classes=num_classes,
                                auxiliary=m.auxiliary, keep_prob=m.keep_prob)
    except ValueError as e:
      raise errors.ConfigError(f'config.model: {e}') from None
  cls = network.NetworkCIFAR if m.kind == 'cifar' else network.NetworkImageNet
  return cls(arch, m.channels, num_classes, m.layers, m.auxiliary)


def build(config: ml_collections.ConfigDict, dataset: pipeline.Dataset,
          genotype, steps_per_epoch: int):
  """Model, optimiser, preprocessing, lr and drop-path schedules."""
  layers.set_depthwise_impl(platform.depthwise_impl(config.depthwise_impl))
  model = make_model(config, genotype, dataset.num_classes)
  o = config.optimizer
  if o.schedule == 'cosine':
    schedule = optim.cosine_per_epoch(o.learning_rate, o.learning_rate_min,
                                      epochs=config.epochs,
                                      steps_per_epoch=steps_per_epoch)
  elif o.schedule == 'sgdr':
    schedule = enas_step.sgdr(o.learning_rate, o.learning_rate_min, t0=o.t0,
                              t_mul=o.t_mul, steps_per_epoch=steps_per_epoch)
  elif o.schedule == 'exponential':
    schedule = optim.exponential_per_epoch(o.learning_rate, o.gamma,
                                           steps_per_epoch=steps_per_epoch)
  else:
    raise ValueError(f'Unknown optimizer.schedule {o.schedule!r}; valid: '
                     f'{config_checks.SCHEDULES}.')
  if o.l2:
    tx = enas_step.child_optimizer(schedule, l2=o.l2, clip=o.grad_clip,
                                   momentum=o.momentum)
  else:
    tx = optim.weight_optimizer(schedule, momentum=o.momentum,
                                weight_decay=o.weight_decay,
                                clip=o.grad_clip or None,
                                clip_eps=o.grad_clip_eps,
                                nesterov=o.get('nesterov', False))
  prep = augment.make_preprocess(mean=dataset.mean, std=dataset.std,
                                 crop_padding=config.data.crop_padding,
                                 flip=config.data.flip,
                                 cutout_length=config.data.cutout_length)
  t = config.train
  if t.drop_path_ramp == 'step':
    drop_path = enas_step.drop_path_ramp(1.0 - t.drop_path_prob,
                                         config.epochs * steps_per_epoch)
    drop_path = drop_path or (lambda step: 0.0)
  else:
    drop_path = step_lib.linear_drop_path(t.drop_path_prob,
                                          epochs=config.epochs,
                                          steps_per_epoch=steps_per_epoch)
  return model, tx, prep, schedule, drop_path


def _depth(config, arch) -> str:
  if isinstance(arch, enas_space.EnasArc):
    if arch.kind == 'macro':
      return f'{arch.space.num_layers} layers'
    return f'{config.model.layers + 2} cells'
  return f'{config.model.layers} cells'


def init_state(model, tx, image_shape, seed, mesh) -> TrainState:
  k_params, k_drop, k_state = jax.random.split(jax.random.key(seed), 3)

  def init():
    x = jax.numpy.zeros((2,) + tuple(image_shape))
    # train=True so that the auxiliary head's variables exist.
    variables = model.init({'params': k_params, 'drop_path': k_drop,
                            'dropout': k_drop}, x,
                           train=True)
    return TrainState.create(params=variables['params'],
                             batch_stats=variables['batch_stats'], tx=tx,
                             rng=k_state)

  return parallel.jit_init(init, mesh)()


def evaluate(eval_fn, state, split: pipeline.Split, batch_size: int,
             mesh) -> dict[str, float]:
  """Loss and accuracy over every example of `split`, in inference mode."""
  pidx, pcount = parallel.process_info()
  sums = None
  for batch in pipeline.eval_batches(split, batch_size, process_index=pidx,
                                     process_count=pcount):
    out = eval_fn(state, parallel.shard_batch(batch, mesh))
    sums = out if sums is None else jax.tree.map(np.add, sums, out)
  sums = parallel.to_host(sums)
  count = float(sums['count'])
  return {'loss': float(sums['loss_sum']) / count,
          'accuracy': float(sums['correct']) / count, 'examples': int(count)}


@dataclasses.dataclass
class TrainResult:
  """What a retraining returns.

  Attributes:
    status: 'completed' or 'interrupted' (SIGTERM; a checkpoint was saved).
    test_accuracy, test_loss: on the whole test split, after the last step
      (None if interrupted).
    param_count: parameters without the auxiliary head (the papers' count).
    history: one `history.EpochRecord` per epoch (training means, and the
      test metrics of the epochs that were evaluated).
    state: the final `TrainState`, on the devices.
    genotype: what was trained.
    summary: everything above and timings (results.json).
    workdir: where files went, or None.
  """
  status: str
  test_accuracy: float | None
  test_loss: float | None
  param_count: int
  history: list[history_lib.EpochRecord]
  state: TrainState
  genotype: genotype_lib.Genotype
  summary: dict
  workdir: str | None = None


@loop.releases_workdirs
def train(config: ml_collections.ConfigDict, workdir: str | None,
          dataset: pipeline.Dataset, genotype: genotype_lib.Genotype, *,
          callback: Callable[[list[history_lib.EpochRecord]], None]
          | None = None,
          progress: str = 'auto') -> TrainResult:
  """Trains `genotype` from scratch (or resumes it in a used workdir).

  Args:
    config: a darts_train config (`nasjax.configs.retrain`).
    workdir: where checkpoints, TensorBoard events, the history and results
      go; None: nothing is written.
    dataset: trained on its whole training split, tested on its test split.
    genotype: the cells to stack.
    callback: called with the history after every epoch.
    progress: 'auto', 'bar', 'lines' or 'none' (`nasjax.progress`).

  Raises `errors.UserError` (config, data, workdir, a workdir holding another
  run) before any work, and `loop.NonFiniteError` if a step is not finite.
  Only a completed run is evaluated at the end and writes `results.json`.
  """
  report = progress_lib.Progress(progress, 'retrain')
  mesh = parallel.make_mesh(config.num_devices or None)
  config_checks.check_train_config(config, mesh.devices.size)
  pipeline.check_image_shape(dataset, config.data.image_shape)
  # Any eval batch size on any device count: the last batch is padded and
  # masked anyway, so round the batch up to a multiple of the devices.
  eval_batch_size = parallel.padded_batch(config.eval_batch_size, mesh)
  per_epoch = pipeline.steps_per_epoch(dataset.train, config.batch_size)
  if config.model.kind == 'enas' and isinstance(genotype,
                                                genotype_lib.Genotype):
    genotype = enas_arc_of(genotype)  # DARTS on the ENAS micro space.
  # Before the workdir: a network that cannot be built writes nothing.
  model, tx, prep, schedule, drop_path = build(config, dataset, genotype,
                                               per_epoch)
  if workdir is not None:
    loop.prepare_workdir(workdir)
  total_steps = config.epochs * per_epoch
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)
  state = init_state(model, tx, dataset.image_shape, config.seed, mesh)
  params = parallel.to_host(state.params)
  counts = {'param_count': network.param_count_without_aux(params),
            'param_count_with_aux': layers.param_count(params)}
  aux = counts['param_count_with_aux'] - counts['param_count']
  report.message(f"Parameters: {counts['param_count']:,}" + (
      f" ({counts['param_count_with_aux']:,} with the auxiliary head)."
      if aux else '.'))

  opened = loop.open_run(
      workdir, state, mesh, keep=config.keep_checkpoints,
      expect={'config': config.to_dict(),
              'genotype': genotype_lib.to_dict(genotype)},
      report=report, what='training', total_steps=total_steps)
  state, start, ckpt, records = (opened.state, opened.start,
                                 opened.checkpointer, opened.history)
  pidx, pcount = parallel.process_info()
  if workdir is not None and pidx == 0 and not opened.previous:
    genotype_lib.write_files(genotype, os.path.join(workdir, 'genotype'))

  t = config.train
  step_fn = parallel.jit_step(functools.partial(
      step_lib.train_step, model=model, preprocess=prep, drop_path=drop_path,
      aux_weight=t.aux_weight, label_smoothing=t.label_smoothing), mesh)
  eval_fn = jax.jit(functools.partial(step_lib.eval_step, model=model,
                                      preprocess=prep),
                    in_shardings=(parallel.replicated(mesh),
                                  parallel.batch_sharding(mesh)),
                    out_shardings=parallel.replicated(mesh))
  train_it = pipeline.batches(dataset.train, config.batch_size,
                              seed=config.seed, start_step=start,
                              process_index=pidx, process_count=pcount)
  writer = None
  if workdir is not None and pidx == 0 and not opened.previous:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    writer = SummaryWriter(os.path.join(workdir, 'tb'))

  def meta_for(st):
    step = int(jax.device_get(st.step))
    return {'step': step, 'epoch': step // per_epoch,
            'data_position': {'train_step': step},
            'genotype': genotype_lib.to_dict(genotype),
            'config': config.to_dict()}

  def one_step(st, i):
    del i
    _, batch = next(train_it)
    return step_fn(st, parallel.shard_batch(batch, mesh))

  def log_test(st, epoch, means):
    test = evaluate(eval_fn, st, dataset.test, eval_batch_size, mesh)
    report.message(
        f'epoch {epoch}: train ' + ' '.join(f'{k}={v:.4f}' for k, v in
                                            sorted(means.items())) +
        f" | test loss {test['loss']:.4f} accuracy {test['accuracy']:.4f}")
    if writer is not None:
      step = int(jax.device_get(st.step))
      writer.add_scalar('test/loss', test['loss'], step)
      writer.add_scalar('test/accuracy', test['accuracy'], step)
      writer.flush()
    return test

  def record_epoch(st, epoch, means, test):
    history_lib.add(records, history_lib.EpochRecord(
        epoch=epoch, step=int(jax.device_get(st.step)), train=dict(means),
        test=test))
    if workdir is not None and pidx == 0:
      history_lib.save(workdir, records)
    if callback is not None:
      callback(list(records))

  def end_of_epoch(st, epoch, means):
    # The last epoch is evaluated once, after the loop.
    if (epoch + 1) * per_epoch >= total_steps:
      return
    test = None
    if (epoch + 1) % config.eval_every_epochs == 0:
      test = log_test(st, epoch, means)
    record_epoch(st, epoch, means, test)

  t0 = time.time()
  result = loop.run(state, start=start, total_steps=total_steps,
                    steps_per_epoch=per_epoch, step=one_step,
                    checkpointer=ckpt, meta_for=meta_for,
                    end_of_epoch=end_of_epoch, writer=writer,
                    learning_rate=schedule, log_every=config.log_every_steps,
                    checkpoint_every=config.checkpoint_every_steps,
                    report=report, resumed_meta=opened.meta,
                    first_step_compiles=(
                        f'the training step (C={config.model.channels}, '
                        f'{_depth(config, genotype)}, batch '
                        f'{config.batch_size})'))
  summary = {**result.summary(total_steps, t0, mesh.devices.size), **counts,
             'genotype': genotype_lib.to_dict(genotype)}
  step = summary['step']
  out = TrainResult(result.status, None, None, counts['param_count'], records,
                    result.state, genotype, summary, workdir)
  if result.status != 'completed':
    if writer is not None:
      writer.close()
    return out  # Not finished: not evaluated, no results file.
  if opened.previous:
    if writer is not None:
      writer.close()
    out.summary = opened.previous
    out.test_accuracy = opened.previous.get('test_accuracy')
    out.test_loss = opened.previous.get('test_loss')
    return out
  last_epoch = (step - 1) // per_epoch
  test = log_test(result.state, last_epoch, result.last_epoch)
  if writer is not None:
    writer.close()
  record_epoch(result.state, last_epoch, result.last_epoch, test)
  summary.update(test_accuracy=test['accuracy'], test_loss=test['loss'],
                 test_examples=test['examples'])
  summary['wall_seconds'] = time.time() - t0
  out.test_accuracy, out.test_loss = test['accuracy'], test['loss']
  if workdir is not None and pidx == 0:
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(summary, f, indent=1)
  return out
