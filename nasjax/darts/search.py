"""The DARTS search loop: data, jitted steps, logs, checkpoints, genotypes.

`search(config, workdir, dataset)` runs (or resumes) a search and returns a
summary. It writes into `workdir`:

  checkpoints/          orbax checkpoints (exact resume: state + data position)
  tb/                   TensorBoard events: losses, accuracies, lr, softmax(alpha)
  genotypes/epoch_NNN.{json,txt} and _normal/_reduce.svg pictures, per epoch
  genotype.{json,txt}, genotype_{normal,reduce}.svg, results.json at the end
                        (of a completed search only)

SIGTERM and Ctrl-C save a checkpoint before leaving. A non-finite loss or
gradient stops the run with `loop.NonFiniteError`; the state is never
updated with it
(`train_state.keep_if_finite`) and no checkpoint is written after it, so the
last one on disk is good (`nasjax.loop`).

Synopsis:

  summary = search(config, '/tmp/run', data.get_dataset('digits'))
"""

import functools
import json
import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from data import pipeline
from nasjax import augment
from nasjax import checkpoint
from nasjax import config_checks
from nasjax import genotype as genotype_lib
from nasjax import layers
from nasjax import loop
from nasjax import parallel
from nasjax.darts import model as model_lib
from nasjax.darts import optim
from nasjax.darts import step as step_lib
from nasjax.search_spaces import darts_cell
from nasjax.train_state import SearchState


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


def search(config: ml_collections.ConfigDict, workdir: str,
           dataset: pipeline.Dataset) -> dict:
  """Runs or resumes a DARTS search in `workdir`. Returns a summary dict.

  Raises `errors.UserError` (config, data, workdir) before any work, and
  `loop.NonFiniteError` if a step is not finite. The summary's `status` is
  'completed' or 'interrupted' (SIGTERM; a checkpoint was saved): only a
  completed search writes `genotype.*` and `results.json`.
  """
  mesh = parallel.make_mesh(config.num_devices or None)
  config_checks.check_search_config(config, mesh.devices.size)
  pipeline.check_image_shape(dataset, config.data.image_shape)
  train, val = pipeline.search_split(dataset.train, config.data.train_portion)
  per_epoch = min(pipeline.steps_per_epoch(train, config.batch_size),
                  pipeline.steps_per_epoch(val, config.batch_size))
  loop.prepare_workdir(workdir)
  total_steps = config.epochs * per_epoch
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)
  space, model, tx, arch_tx, prep, schedule = build(config, dataset, per_epoch)

  state = init_state(model, space, tx, arch_tx, dataset.image_shape,
                     config.seed, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                 config.keep_checkpoints)
  state = loop.resume(ckpt, state, mesh)
  start = int(jax.device_get(state.step))

  is_weights = config.search.arch_mode == 'weights_only'
  if is_weights:
    fn = functools.partial(step_lib.weight_step, model=model, preprocess=prep)
    step_fn = parallel.jit_step(fn, mesh)
  elif config.search.staged and config.search.arch_mode != 'first_order':
    step_fn = step_lib.staged_search_step(
        parallel.stage_jitter(mesh), model=model, preprocess=prep,
        arch_mode=config.search.arch_mode, learning_rate=schedule,
        fd_radius=config.search.fd_radius)
  else:
    fn = functools.partial(step_lib.search_step, model=model, preprocess=prep,
                           arch_mode=config.search.arch_mode,
                           learning_rate=schedule,
                           fd_radius=config.search.fd_radius,
                           second_order_impl=config.search.second_order_impl)
    step_fn = parallel.jit_step(fn, mesh, num_batches=2)

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
    genotype_lib.write_files(
        g, os.path.join(workdir, 'genotypes', f'epoch_{epoch:03d}'))
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

  def one_step(st, i):
    _, tb = next(train_it)
    tb = parallel.shard_batch(tb, mesh)
    if is_weights:
      return step_fn(st, tb)
    _, vb = next(val_it)
    return step_fn(st, tb, parallel.shard_batch(vb, mesh))

  if hasattr(step_fn, 'precompile') and start < total_steps:
    t = time.time()
    batch = parallel.abstract_batch(
        {'image': train.images, 'label': train.labels}, config.batch_size,
        mesh)
    step_fn.precompile(state, batch, batch,
                       workers=config.search.compile_workers)
    logging.info('Compiled the staged step in %.1f s.', time.time() - t)

  t0 = time.time()
  result = loop.run(state, start=start, total_steps=total_steps,
                    steps_per_epoch=per_epoch, step=one_step,
                    checkpointer=ckpt, meta_for=meta_for,
                    end_of_epoch=end_of_epoch, writer=writer,
                    learning_rate=schedule,
                    log_every=config.log_every_steps,
                    checkpoint_every=config.checkpoint_every_steps)
  state, step_times = result.state, result.step_times
  if writer is not None:
    writer.close()

  alpha = parallel.to_host(state.alpha)
  g = genotype_lib.from_alpha(alpha, space)
  summary = {
      'status': result.status,
      'start_step': result.start,
      'step': int(jax.device_get(state.step)),
      'total_steps': total_steps,
      'last_checkpoint': result.last_checkpoint,
      'wall_seconds': time.time() - t0,
      'median_step_seconds': float(np.median(step_times)) if step_times else None,
      'devices': int(mesh.devices.size),
      'genotype': genotype_lib.to_dict(g),
      'last_epoch_metrics': result.last_epoch,
  }
  if result.status != 'completed':
    return summary  # Not finished: no final genotype or results files.
  genotype_lib.write_files(g, os.path.join(workdir, 'genotype'))
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return summary
