"""The ENAS search loop: child epochs and controller phases, then derive.

`search(config, workdir, dataset)` runs (or resumes) an ENAS search and
returns an `EnasSearchResult`. Each epoch is `steps_per_epoch` child steps
(one sampled arc per minibatch, the shared weights updated), then the
controller phase: `controller.train_steps` REINFORCE updates of
`controller.num_aggregate` children each, every child scored on its own
validation minibatch (the last `data.num_valid` training images, not
augmented). At the end of every epoch `derive.report_samples` arcs are
sampled and scored on the same `derive.num_batches` validation batches, and
the best is reported; at the end of the search `derive.num_samples` are, and
the best is the result (`derive`).

With a workdir it writes:

  checkpoints/        orbax checkpoints (exact resume: shared weights and
                      their optimiser, controller weights, Adam state and
                      baseline, key, data position)
  history.json        per epoch: child and controller means, best arcs
  tb/                 TensorBoard: child loss/accuracy/lr per step;
                      controller reward, baseline, entropy, log-prob, skip
                      rate, loss per update; best arc accuracy per epoch
  arcs/epoch_NNN.*    the epoch's best arc (JSON, string, micro pictures)
  arc.json, arc.txt, arc_{normal,reduce}.svg (micro), results.json: at
                      the end of a completed search only

SIGTERM and Ctrl-C save first; a non-finite loss, gradient or controller
update stops with `loop.NonFiniteError` and keeps the last good checkpoint.

  result = search(config, '/tmp/enas', data.load('digits'))
  result.arc_string, result.history[-1].train['controller/reward']
"""

import dataclasses
import functools
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from nasjax import augment
from nasjax import config_checks
from nasjax import history as history_lib
from nasjax import layers
from nasjax import loop
from nasjax import parallel
from nasjax import platform
from nasjax import progress as progress_lib
from nasjax.data import pipeline
from nasjax.enas import child as child_lib
from nasjax.strategies import controller as controller_lib
from nasjax.strategies import reinforce
from nasjax.enas import step as step_lib
from nasjax.search_spaces import enas as enas_space


def make_space(config):
  if config.space == 'micro':
    return enas_space.MicroSpace(num_nodes=config.model.nodes)
  return enas_space.MacroSpace(num_layers=config.model.layers)


def controller_config(config) -> controller_lib.ControllerConfig:
  c = config.controller
  return controller_lib.ControllerConfig(
      lstm_size=c.lstm_size, temperature=c.temperature or None,
      tanh_constant=c.tanh_constant or None, op_tanh_reduce=c.op_tanh_reduce,
      skip_target=c.skip_target, skip_penalty_form=c.skip_penalty_form)


def make_model(config, space, num_classes: int, arc=None):
  """The shared child of the config (or, with `arc`, its fixed network)."""
  m = config.model
  if isinstance(space, enas_space.MicroSpace):
    return child_lib.child(space, arc, channels=m.channels,
                           num_layers=m.layers, num_classes=num_classes,
                           aux_head=m.aux_weight > 0, keep_prob=m.keep_prob)
  return child_lib.child(space, arc, channels=m.channels,
                         num_classes=num_classes, keep_prob=m.keep_prob)


def holdout_split(split: pipeline.Split, num_valid: int
                  ) -> tuple[pipeline.Split, pipeline.Split]:
  """(the child's images, the last `num_valid`: the controller's)."""
  if not 0 < num_valid < len(split):
    raise pipeline.DataError(
        f'data.num_valid={num_valid} must leave images on both sides of '
        f'a training split of {len(split)}.')
  return (pipeline.Split(split.images[:-num_valid], split.labels[:-num_valid]),
          pipeline.Split(split.images[-num_valid:], split.labels[-num_valid:]))


@dataclasses.dataclass
class Setup:
  """Everything a search (or a test) builds from a config."""
  space: object
  model: object
  controller: controller_lib.ControllerConfig
  prep: Callable
  schedule: Callable
  tx: object
  controller_tx: object
  drop_rate: Callable | None


def build(config, dataset: pipeline.Dataset, steps_per_epoch: int) -> Setup:
  """The model, optimisers and schedules (the drop-path ramp spans all
  `config.epochs`, whatever `max_steps` stops the run at)."""
  layers.set_depthwise_impl(platform.depthwise_impl(config.depthwise_impl))
  space = make_space(config)
  o = config.optimizer
  schedule = step_lib.sgdr(o.learning_rate, o.learning_rate_min, t0=o.t0,
                           t_mul=o.t_mul, steps_per_epoch=steps_per_epoch)
  prep = augment.make_preprocess(mean=dataset.mean, std=dataset.std,
                                 crop_padding=config.data.crop_padding,
                                 flip=config.data.flip)
  drop = (step_lib.drop_path_ramp(config.model.drop_path_keep,
                                  config.epochs * steps_per_epoch)
          if config.space == 'micro' else None)
  return Setup(space, make_model(config, space, dataset.num_classes),
               controller_config(config), prep, schedule,
               step_lib.child_optimizer(schedule, l2=o.l2, clip=o.grad_clip,
                                        momentum=o.momentum),
               reinforce.adam(config.controller.learning_rate,
                             form=config.controller.adam_form), drop)


def init_state(s: Setup, image_shape, seed: int, mesh) -> step_lib.EnasState:
  k_child, k_ctrl, k_state = jax.random.split(jax.random.key(seed), 3)

  def init():
    x = jnp.zeros((2,) + tuple(image_shape))
    arc = controller_lib.sample(
        controller_lib.init(k_ctrl, s.space, s.controller), k_ctrl,
        space=s.space, config=s.controller).arc
    keys = dict(zip(('params', 'dropout', 'drop_path'),
                    jax.random.split(k_child, 3)))
    v = s.model.init(keys, x, arc, train=True)
    return step_lib.EnasState.create(
        params=v['params'], batch_stats=v.get('batch_stats', {}),
        controller_params=controller_lib.init(k_ctrl, s.space, s.controller),
        tx=s.tx, controller_tx=s.controller_tx, rng=k_state)

  return parallel.jit_init(init, mesh)()


@dataclasses.dataclass
class Steps:
  """The compiled functions of a search."""
  child: Callable        # (state, batch) -> (state, metrics)
  controller: Callable   # (state, [N, B] batches) -> (state, metrics)
  score: Callable        # (state, arcs [n], [K, B] batches) -> [n] accuracy
  sample: Callable       # (controller params, key) -> n stacked Samples
  n: int                 # arcs per `sample` / `score` call


def steps(config, s: Setup, mesh) -> Steps:
  """The jitted steps for `mesh`; `score` and `sample` take
  `derive.report_samples` arcs per call."""
  child = functools.partial(
      step_lib.child_step, model=s.model, space=s.space, preprocess=s.prep,
      controller_config=s.controller, aux_weight=config.model.aux_weight,
      drop_rate=s.drop_rate)
  c = config.controller
  ctrl = functools.partial(
      step_lib.controller_step, model=s.model, space=s.space,
      preprocess=s.prep, controller_config=s.controller,
      entropy_weight=c.entropy_weight, baseline_decay=c.baseline_decay,
      skip_weight=c.skip_weight)
  score = functools.partial(step_lib.score_arcs, model=s.model,
                            preprocess=s.prep)
  n = config.derive.report_samples
  one = functools.partial(controller_lib.sample, space=s.space,
                          config=s.controller)
  sample = lambda params, key: jax.vmap(one, in_axes=(None, 0))(
      params, jax.random.split(key, n))
  rep = parallel.replicated(mesh)
  return Steps(parallel.jit_step(child, mesh),
               parallel.jit_step(ctrl, mesh, batch_axis=1),
               jax.jit(score, in_shardings=(rep, rep,
                                            parallel.batch_sharding(mesh, 1)),
                       out_shardings=rep),
               jax.jit(sample, out_shardings=rep), n)


def _stack(batches: list[dict]) -> dict:
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def derive_batches(val: pipeline.Split, batch_size: int, num_batches: int,
                   mesh) -> dict:
  """The fixed validation batches candidates are scored on: the first
  `num_batches` full batches of the held-out images, in order (full, so
  that a child normalising with batch statistics never sees padding),
  as [K, B, ...] sharded along B."""
  k = min(num_batches, len(val) // batch_size)
  pidx, pcount = parallel.process_info()
  per_host = batch_size // pcount
  out = {}
  for name, x in (('image', val.images), ('label', val.labels)):
    x = x[:k * batch_size].reshape((k, batch_size) + x.shape[1:])
    out[name] = x[:, pidx * per_host:(pidx + 1) * per_host]
  out['mask'] = np.ones(out['label'].shape, np.float32)
  return parallel.shard_batch(out, mesh, axis=1)


def derive(state, fns: Steps, batches, key, num_samples: int
           ) -> tuple[list, np.ndarray]:
  """Samples `num_samples` arcs (in calls of `fns.n`) and scores each on
  the same `batches`; returns (arcs, accuracies), best first (ties: the
  first sampled)."""
  arcs, accs = [], []
  for k in range(-(-num_samples // fns.n)):
    loop.check_terminated()
    sample = fns.sample(state.controller.params, jax.random.fold_in(key, k))
    accs.append(np.asarray(fns.score(state, sample.arc, batches)))
    arcs += _unstack(parallel.to_host(sample.arc), fns.n)
  accs = np.concatenate(accs)[:num_samples]
  order = np.argsort(-accs, kind='stable')
  return [arcs[i] for i in order], accs[order]


def score_random(state, fns: Steps, space, batches, seed: int,
                 num_samples: int) -> np.ndarray:
  """Accuracies of `num_samples` uniformly random arcs of `space` (numpy
  seed `seed`) with the shared weights, on the same batches as `derive`:
  what the controller's samples are compared with."""
  rng = np.random.default_rng(seed)
  accs = []
  for _ in range(-(-num_samples // fns.n)):
    loop.check_terminated()
    arcs = [space.random_arc(rng) for _ in range(fns.n)]
    stacked = jax.tree.map(lambda *a: np.stack(a), *arcs)
    accs.append(np.asarray(fns.score(state, stacked, batches)))
  return np.concatenate(accs)[:num_samples]


def announce_first_call(fn, report, what):
  """`fn`, whose first call (its compilation) is announced and timed."""
  called = []

  def wrapped(*args):
    if called:
      return fn(*args)
    called.append(True)
    report.compiling(what)
    out = jax.block_until_ready(fn(*args))
    report.compiled(what)
    return out

  return wrapped


def controller_phase(state, fns: 'Steps', stacks, mesh):
  """`fns.controller` on each host stack [N, B, ...] of `stacks` in turn:
  (state, every update's metrics, whether all were finite)."""
  updates = []
  for stack in stacks:
    state, m = fns.controller(state, parallel.shard_batch(stack, mesh,
                                                          axis=1))
    updates.append(m)
  return state, updates, jnp.all(jnp.stack([m['finite'] for m in updates]))


def _unstack(tree, n):
  return [jax.tree.map(lambda x: x[i], tree) for i in range(n)]  # pylint: disable=cell-var-from-loop


@dataclasses.dataclass
class EnasSearchResult:
  """What an ENAS search returns.

  Attributes:
    status: 'completed' or 'interrupted'.
    arc: the derived arc (micro int [2, 4B]; macro {'ops', 'skips'}), or
      None if interrupted.
    accuracy: its accuracy on the derive batches.
    candidates: [(arc string, accuracy)] of every derived sample, best first.
    history: one `history.EpochRecord` per epoch.
    state: the final `EnasState`.
    space: the search space.
    summary: what results.json holds.
    workdir: where files went, or None.
    controller_config: the controller's settings (to sample from `state`).
    perplexity: a recurrent search's: the derived cell's perplexity on the
      derive windows (`accuracy` is then None, and the candidates' scores
      are perplexities).
  """
  status: str
  arc: object
  accuracy: float | None
  candidates: list
  history: list
  state: step_lib.EnasState
  space: object
  summary: dict
  workdir: str | None = None
  controller_config: controller_lib.ControllerConfig | None = None
  perplexity: float | None = None

  @property
  def arc_string(self) -> str | None:
    if self.arc is None:
      return None
    return enas_space.to_dict(self.space, self.arc)['arc']

  @property
  def genotype(self) -> enas_space.EnasArc | None:
    """The derived architecture as an `EnasArc`, what `nasjax.retrain` and
    `final.train` take (a recurrent one: `nasjax.retrain_lm`)."""
    return None if self.arc is None else enas_space.EnasArc(self.space,
                                                            self.arc)


def _arc_string(space, arc) -> str:
  return enas_space.to_dict(space, arc)['arc']


@loop.releases_workdirs
def search(config: ml_collections.ConfigDict, workdir: str | None,
           dataset: pipeline.Dataset, *,
           callback: Callable[[list], None] | None = None,
           progress: str = 'auto') -> EnasSearchResult:
  """Runs (or, in a used workdir, resumes) an ENAS search.

  Args and errors as `nasjax.darts.search.search`.
  """
  report = progress_lib.Progress(progress, 'search')
  mesh = parallel.make_mesh(config.num_devices or None)
  config_checks.check_enas_config(config, mesh.devices.size)
  pipeline.check_image_shape(dataset, config.data.image_shape)
  train, val = holdout_split(dataset.train, config.data.num_valid)
  per_epoch = (config.steps_per_epoch or
               pipeline.steps_per_epoch(
                   train, config.batch_size, "the child's split (the "
                   'training split less data.num_valid)'))
  pipeline.steps_per_epoch(val, config.batch_size, "the controller's "
                           'hold-out split (data.num_valid)')  # Fits?
  if workdir is not None:
    loop.prepare_workdir(workdir)
  total_steps = config.epochs * per_epoch
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)
  s = build(config, dataset, per_epoch)
  state = init_state(s, dataset.image_shape, config.seed, mesh)
  opened = loop.open_run(workdir, state, mesh, keep=config.keep_checkpoints,
                         expect={'config': config.to_dict()}, report=report,
                         what='search', total_steps=total_steps)
  state, start, ckpt, records = (opened.state, opened.start,
                                 opened.checkpointer, opened.history)
  fns = steps(config, s, mesh)

  c = config.controller
  per_phase = c.train_steps * c.num_aggregate
  pidx, pcount = parallel.process_info()
  batch_args = dict(process_index=pidx, process_count=pcount)
  train_it = pipeline.batches(train, config.batch_size, seed=config.seed,
                              start_step=start, **batch_args)
  val_it = pipeline.batches(val, config.batch_size, seed=config.seed + 1,
                            start_step=(start // per_epoch) * per_phase,
                            **batch_args)
  fixed = derive_batches(val, config.batch_size, config.derive.num_batches,
                         mesh)
  key = jax.random.key(config.seed + 2)

  writer = None
  if workdir is not None and pidx == 0 and not opened.previous:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    writer = SummaryWriter(os.path.join(workdir, 'tb'))
    os.makedirs(os.path.join(workdir, 'arcs'), exist_ok=True)

  phase = {}  # The last controller phase's metrics (device arrays).
  n_dev = mesh.devices.size
  on = (f'on {n_dev} {jax.default_backend().upper()} device'
        f'{"s" if n_dev > 1 else ""}')
  fns.controller = announce_first_call(
      fns.controller, report, f'the controller update ({c.num_aggregate} '
      f'children, batch {config.batch_size} {on})')
  fns.score = announce_first_call(
      fns.score, report, f'the arc scorer ({fns.n} arcs, '
      f'{config.derive.num_batches} batches {on})')

  def one_step(st, i):
    _, tb = next(train_it)
    st, metrics = fns.child(st, parallel.shard_batch(tb, mesh))
    if (i + 1) % per_epoch:
      return st, metrics
    st, phase['updates'], finite = controller_phase(
        st, fns, (_stack([next(val_it)[1] for _ in range(c.num_aggregate)])
                  for _ in range(c.train_steps)), mesh)
    return st, {**metrics, 'finite': metrics['finite'] & finite,
                'controller_finite': finite}

  def meta_for(st):
    step = int(jax.device_get(st.step))
    return {'step': step, 'epoch': step // per_epoch,
            'data_position': {'train_step': step,
                              'val_step': (step // per_epoch) * per_phase},
            'config': config.to_dict()}

  def end_of_epoch(st, epoch, means):
    means = dict(means, **reinforce.phase_means(
        phase.pop('updates', []), epoch, c.train_steps, writer))
    arcs, accs = derive(st, fns, fixed, jax.random.fold_in(key, epoch),
                        config.derive.report_samples)
    best = [{'arc': _arc_string(s.space, a), 'accuracy': float(v)}
            for a, v in zip(arcs, accs)]
    step = int(jax.device_get(st.step))
    history_lib.add(records, history_lib.EpochRecord(
        epoch=epoch, step=step, train=means, arcs=best))
    report.message(
        f'epoch {epoch}: ' + ' '.join(f'{k}={v:.4f}' for k, v in
                                      sorted(means.items())) +
        f' | best of {len(best)} sampled: {best[0]["accuracy"]:.4f} '
        f'[{best[0]["arc"]}]')
    if workdir is not None and pidx == 0:
      enas_space.write_files(s.space, arcs[0],
                             os.path.join(workdir, 'arcs',
                                          f'epoch_{epoch:03d}'))
      history_lib.save(workdir, records)
    if writer is not None:
      for k, v in means.items():
        if not k.startswith('controller/'):
          writer.add_scalar(f'epoch/{k}', v, step)
      writer.add_scalar('epoch/best_sampled_accuracy', best[0]['accuracy'],
                        step)
      writer.add_scalar('epoch/mean_sampled_accuracy', float(np.mean(accs)),
                        step)
      writer.flush()
    if callback is not None:
      callback(list(records))

  what = (f'the ENAS {config.space} child step (F={config.model.channels}, '
          f'{config.model.layers} layers, batch {config.batch_size} {on})')
  t0 = time.time()
  result = loop.run(state, start=start, total_steps=total_steps,
                    steps_per_epoch=per_epoch, step=one_step,
                    checkpointer=ckpt, meta_for=meta_for,
                    end_of_epoch=end_of_epoch, writer=writer,
                    learning_rate=s.schedule,
                    log_every=config.log_every_steps,
                    checkpoint_every=config.checkpoint_every_steps,
                    report=report, resumed_meta=opened.meta,
                    first_step_compiles=what)
  state = result.state
  summary = {**result.summary(total_steps, t0, n_dev),
             'space': config.space}
  if result.status != 'completed':
    if writer is not None:
      writer.close()
    return EnasSearchResult(result.status, None, None, [], records, state,
                            s.space, summary, workdir, s.controller)
  if opened.previous:
    if writer is not None:
      writer.close()
    p = opened.previous
    return EnasSearchResult(
        'completed', enas_space.from_dict(p['arc'])[1], p['derive_accuracy'],
        [tuple(c) for c in p['candidates']], records, state, s.space, p,
        workdir, s.controller)
  report.message(f'Deriving: {config.derive.num_samples} sampled arcs, each '
                 f'scored on the same {config.derive.num_batches} validation '
                 'batches.')
  arcs, accs = derive(state, fns, fixed, jax.random.fold_in(key, 1 << 20),
                      config.derive.num_samples)
  candidates = [(_arc_string(s.space, a), float(v))
                for a, v in zip(arcs, accs)]
  rand = score_random(state, fns, s.space, fixed, config.seed,
                      config.derive.num_samples)
  report.message(
      f'Derived arc: {candidates[0][0]} (accuracy {accs[0]:.4f}; the '
      f'controller\'s {len(accs)} samples: mean {np.mean(accs):.4f}; '
      f'{len(rand)} uniformly random arcs: mean {np.mean(rand):.4f}, best '
      f'{np.max(rand):.4f}, same shared weights and batches).')
  summary.update({'arc': enas_space.to_dict(s.space, arcs[0]),
                  'derive_accuracy': float(accs[0]),
                  'derive_mean_accuracy': float(np.mean(accs)),
                  'random_mean_accuracy': float(np.mean(rand)),
                  'random_best_accuracy': float(np.max(rand)),
                  'candidates': candidates})
  out = EnasSearchResult('completed', arcs[0], float(accs[0]), candidates,
                         records, state, s.space, summary, workdir,
                         s.controller)
  if writer is not None:
    writer.add_scalar('derive/best_accuracy', float(accs[0]), summary['step'])
    writer.close()
  if workdir is None or pidx != 0:
    return out
  enas_space.write_files(s.space, arcs[0], os.path.join(workdir, 'arc'))
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return out
