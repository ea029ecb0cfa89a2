"""The DARTS search loop: data, jitted steps, logs, checkpoints, genotypes.

`search(config, workdir, dataset)` runs (or resumes) a search and returns a
summary. It writes into `workdir`:

  checkpoints/          orbax checkpoints (exact resume: state + data position)
  tb/                   TensorBoard events: losses, accuracies, lr, softmax(alpha)
  genotypes/epoch_NNN.{json,txt} and _normal/_reduce.svg pictures, per epoch
  genotype.{json,txt}, genotype_{normal,reduce}.svg, results.json at the end

SIGTERM and Ctrl-C save a checkpoint before leaving. A non-finite loss stops
the run with `FloatingPointError`; the state is never updated with it (see
`step._guarded`) and no checkpoint is written after it, so the last one on
disk is good.

Synopsis:

  summary = search(config, '/tmp/run', data.get_dataset('digits'))
"""

import functools
import json
import os
import signal
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from data import pipeline
from nasjax import augment
from nasjax import checkpoint
from nasjax import genotype as genotype_lib
from nasjax import layers
from nasjax import parallel
from nasjax.darts import model as model_lib
from nasjax.darts import optim
from nasjax.darts import step as step_lib
from nasjax.search_spaces import darts_cell
from nasjax.train_state import SearchState


class _Interrupt:
  """Turns SIGTERM into a flag the loop checks between steps."""

  def __init__(self):
    self.requested = False
    self._old = None

  def __enter__(self):
    try:
      self._old = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: leave signals alone.
      self._old = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._old is not None:
      signal.signal(signal.SIGTERM, self._old)


def build(config: ml_collections.ConfigDict, dataset: pipeline.Dataset,
          steps_per_epoch: int):
  """Model, space, optimisers, preprocessing and the lr schedule."""
  layers.set_depthwise_impl(config.depthwise_impl)
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
                              clip=o.grad_clip or None)
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


def _write_genotype(g, prefix):
  with open(prefix + '.json', 'w') as f:
    f.write(genotype_lib.to_json(g) + '\n')
  with open(prefix + '.txt', 'w') as f:
    f.write(genotype_lib.to_notation(g) + '\n')
  genotype_lib.write_svg(g, prefix)


def _fmt_time(seconds):
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}'


def search(config: ml_collections.ConfigDict, workdir: str,
           dataset: pipeline.Dataset) -> dict:
  """Runs or resumes a DARTS search in `workdir`. Returns a summary dict."""
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh(config.num_devices or None)
  parallel.check_batch(config.batch_size, mesh)
  if tuple(config.data.image_shape) != dataset.image_shape:
    raise pipeline.DataError(
        f'Dataset {dataset.name!r} has images of shape {dataset.image_shape} '
        f'but config.data.image_shape is {tuple(config.data.image_shape)}.')
  train, val = pipeline.search_split(dataset.train, config.data.train_portion)
  per_epoch = min(pipeline.steps_per_epoch(train, config.batch_size),
                  pipeline.steps_per_epoch(val, config.batch_size))
  total_steps = config.epochs * per_epoch
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)
  space, model, tx, arch_tx, prep, schedule = build(config, dataset, per_epoch)

  state = init_state(model, space, tx, arch_tx, dataset.image_shape,
                     config.seed, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                 config.keep_checkpoints)
  restored, meta = ckpt.restore_latest(state)
  if restored is not None:
    state = parallel.replicate(restored, mesh)
    logging.info('Resumed from step %d (%s).', meta['step'], workdir)
  start = int(jax.device_get(state.step))

  is_weights = config.search.arch_mode == 'weights_only'
  if is_weights:
    fn = functools.partial(step_lib.weight_step, model=model, preprocess=prep)
  else:
    fn = functools.partial(step_lib.search_step, model=model, preprocess=prep,
                           arch_mode=config.search.arch_mode,
                           learning_rate=schedule,
                           fd_radius=config.search.fd_radius,
                           second_order_impl=config.search.second_order_impl)
  step_fn = parallel.jit_step(fn, mesh, num_batches=1 if is_weights else 2)

  pidx, pcount = parallel.process_info()
  batch_args = dict(process_index=pidx, process_count=pcount,
                    start_step=start)
  train_it = pipeline.batches(train, config.batch_size, seed=config.seed,
                              **batch_args)
  val_it = pipeline.batches(val, config.batch_size, seed=config.seed + 1,
                            **batch_args)

  writer = None
  if pidx == 0:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    writer = SummaryWriter(os.path.join(workdir, 'tb'))
  os.makedirs(os.path.join(workdir, 'genotypes'), exist_ok=True)

  def meta_for(st):
    step = int(jax.device_get(st.step))
    g = genotype_lib.from_alpha(parallel.to_host(st.alpha), space)
    return {'step': step, 'epoch': step // per_epoch,
            'data_position': {'train_step': step, 'val_step': step},
            'genotype': genotype_lib.to_dict(g),
            'config': config.to_dict()}

  def end_of_epoch(st, epoch, sums):
    alpha = parallel.to_host(st.alpha)
    g = genotype_lib.from_alpha(alpha, space)
    _write_genotype(g, os.path.join(workdir, 'genotypes', f'epoch_{epoch:03d}'))
    logging.info('epoch %d genotype: %s', epoch, genotype_lib.to_notation(g))
    if writer is not None:
      step = int(jax.device_get(st.step))
      for k, v in sums.items():
        writer.add_scalar(f'epoch/{k}', v, step)
      for t, a in alpha.items():
        w = np.exp(a - a.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        for e, (i, j) in enumerate(space.edges()):
          writer.add_scalars(f'alpha_{t}/node{i}_input{j}',
                             dict(zip(space.primitives, w[e].tolist())), step)
      writer.flush()

  t0, step_times, pending = time.time(), [], None
  epoch_sums, epoch_count, last_epoch = {}, 0, {}
  last_good_saved = ckpt.latest_step()
  status = 'completed'

  def check(metrics, step):
    if not bool(metrics['finite']):
      raise FloatingPointError(
          f'Non-finite loss at step {step} ({ {k: float(v) for k, v in metrics.items()} }). '
          f'The run stopped; the state was not updated with it and the last '
          f'good checkpoint (step {ckpt.latest_step()}) in {workdir} is kept.')

  def record(metrics, step):
    nonlocal epoch_count
    host = {k: float(v) for k, v in metrics.items() if k != 'finite'}
    for k, v in host.items():
      epoch_sums[k] = epoch_sums.get(k, 0.0) + v
    epoch_count += 1
    if writer is not None:
      for k, v in host.items():
        writer.add_scalar(f'train/{k}', v, step + 1)
      writer.add_scalar('train/lr', float(schedule(step)), step + 1)
    return host

  with _Interrupt() as interrupt:
    try:
      for step in range(start, total_steps):
        _, tb = next(train_it)
        tb = parallel.shard_batch(tb, mesh)
        tstart = time.time()
        if is_weights:
          state, metrics = step_fn(state, tb)
        else:
          _, vb = next(val_it)
          state, metrics = step_fn(state, tb, parallel.shard_batch(vb, mesh))
        # Fetch the metrics one step late so the device never waits for us.
        if pending is not None:
          check(*pending)
          record(*pending)
        pending = (metrics, step)
        jax.block_until_ready(metrics)
        step_times.append(time.time() - tstart)
        done = step + 1
        if done % config.log_every_steps == 0 or done == total_steps:
          check(*pending)
          host = record(*pending)
          pending = None
          rate = np.median(step_times[-20:])
          logging.info(
              'step %d/%d (%.0f%%) %s | %.2f s/step | ETA %s', done,
              total_steps, 100 * done / total_steps,
              ' '.join(f'{k}={v:.4f}' for k, v in sorted(host.items())), rate,
              _fmt_time(rate * (total_steps - done)))
        if done % per_epoch == 0 or done == total_steps:
          if pending is not None:
            check(*pending)
            record(*pending)
            pending = None
          sums = {k: v / max(epoch_count, 1) for k, v in epoch_sums.items()}
          end_of_epoch(state, (done - 1) // per_epoch, sums)
          last_epoch = sums
          epoch_sums.clear()
          epoch_count = 0
        if (done % config.checkpoint_every_steps == 0 or
            done == total_steps or interrupt.requested):
          if pending is not None:
            check(*pending)
          ckpt.save(state, meta_for(state))
          last_good_saved = done
        if interrupt.requested:
          logging.warning('SIGTERM: saved step %d, stopping.', done)
          status = 'interrupted'
          break
    except KeyboardInterrupt:
      if pending is not None:
        check(*pending)
      ckpt.save(state, meta_for(state))
      logging.warning('Interrupted: saved step %d.',
                      int(jax.device_get(state.step)))
      ckpt.close()
      raise
  ckpt.close()
  if writer is not None:
    writer.close()

  alpha = parallel.to_host(state.alpha)
  g = genotype_lib.from_alpha(alpha, space)
  _write_genotype(g, os.path.join(workdir, 'genotype'))
  summary = {
      'status': status,
      'step': int(jax.device_get(state.step)),
      'total_steps': total_steps,
      'last_checkpoint': last_good_saved,
      'wall_seconds': time.time() - t0,
      'median_step_seconds': float(np.median(step_times)) if step_times else None,
      'devices': int(mesh.devices.size),
      'genotype': genotype_lib.to_dict(g),
      'last_epoch_metrics': last_epoch,
  }
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return summary
