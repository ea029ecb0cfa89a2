"""The one-shot search loop: any strategy (`nasjax.strategies`) on any space
with a supernet (`nasjax.mixing.OneShotSpace`; NAS-Bench-201 today).

`search(config, workdir, dataset)` runs (or resumes) a search with a
`nasjax.configs.one_shot_search` config and returns a `OneShotResult`. Each
step is the bilevel step of `nasjax.bilevel` (alpha on a validation
batch, then the weights on a training batch; only the weights for random
sampling), its loss a supernet pass under the strategy's mixing of that
pass. ENAS's controller (`strategies.Enas`) is trained after every epoch by its
REINFORCE updates on the validation half. At the end (`derive`):

  darts, gdas        the cell of the largest alpha on every edge;
  random_sampling    `derive.num_samples` uniformly random cells scored on
                     the same `derive.batches` validation batches with the
                     shared weights, the best one;
  enas               as many cells sampled from the controller, scored so,
                     the best one.

Every strategy also scores `derive.num_samples` uniformly random cells and
the derived one on those batches (BatchNorm on batch statistics), so that a
result says whether the search beat random cells under its own weights.
With `config.table` (a NAS-Bench-201 table) the derived cell is looked up:
its `-val` and `-test` accuracy beside the all-skip cell, the table's best
cell by `-val` and random search with as many trials as the derivation
scored.

With a workdir it writes checkpoints/ (exact resume), history.json, tb/
(TensorBoard) and, once complete, cell.txt, results.json and (with the
Hessian monitor, `config.hessian`) hessian.png; SIGTERM and
Ctrl-C save first; a non-finite loss stops with `loop.NonFiniteError`
keeping the last good checkpoint (`nasjax.loop`).

Synopsis:

  cfg = nasjax.configs.one_shot('nb201_gdas_digits')
  result = search(cfg, None, nasjax.data.load('digits'))
  result.cell_string, result.summary['supernet_accuracy']
"""

import dataclasses
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from nasjax import augment
from nasjax import config_checks
from nasjax import hessian as hessian_lib
from nasjax import history as history_lib
from nasjax import loop
from nasjax import mixing as mixing_lib
from nasjax import parallel
from nasjax import progress as progress_lib
from nasjax import strategies as strategies_lib
from nasjax import train_state
from nasjax import optim
from nasjax.strategies import reinforce
from nasjax import bilevel as step_lib
from nasjax.data import pipeline
from nasjax.train_state import SearchState



def space_of(name: str) -> mixing_lib.OneShotSpace:
  """The space object of a config's `space`."""
  # pylint: disable=g-import-not-at-top
  if name == 'nb201':
    from nasjax.search_spaces import nb201
    return nb201.SPACE
  if name == 'darts_cell':
    from nasjax.search_spaces import darts_cell_one_shot
    return darts_cell_one_shot.SPACE
  raise ValueError(f'Unknown one-shot space {name!r}.')


def strategy_of(config: ml_collections.ConfigDict, space=None):
  """The strategy of a config (ENAS's controller sized for `space`, by
  default the config's)."""
  s = config.strategy
  if s.name == 'gdas':
    return strategies_lib.Gdas(s.tau_max, s.tau_min)
  if s.name == 'enas':
    space = space or space_of(config.space)
    return strategies_lib.Enas(space.decisions(), **s.controller.to_dict())
  return strategies_lib.STRATEGIES[s.name]()


@dataclasses.dataclass(frozen=True)
class OneShotFamily:
  """A `nasjax.bilevel.Family`: a supernet pass under the strategy's
  mixing, cross-entropy over labels. Each pass draws its own sampling key;
  `progress` (the epoch over epochs - 1) drives GDAS's temperature."""
  model: Any
  preprocess: Callable
  strategy: Any
  steps_per_epoch: int
  epochs: int
  # The weight step also reports |d L_train / d alpha| (and on XLA:CPU runs
  # 5x faster so: `bilevel.train_gradients`).
  alpha_gradient_metric = True

  def prepare(self, rng, step, salt, batch, carry=None):
    del carry
    rng = jax.random.fold_in(jax.random.fold_in(rng, step), salt)
    k_aug, k_mix = jax.random.split(rng)
    epoch = jnp.floor_divide(step, self.steps_per_epoch)
    progress = jnp.minimum(epoch / max(self.epochs - 1, 1), 1.0)
    return {'image': self.preprocess(batch['image'], k_aug, True),
            'label': batch['label'], 'key': k_mix, 'progress': progress}

  def loss(self, params, batch_stats, alpha, inputs):
    mixing = self.strategy.mixing(alpha, inputs['key'], inputs['progress'])
    logits, updates = self.model.apply(
        {'params': params, 'batch_stats': batch_stats}, inputs['image'],
        mixing, train=True, mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, inputs['label']).mean()
    return loss, (updates['batch_stats'], {'logits': logits})

  def metrics(self, aux, inputs):
    return {'accuracy': jnp.mean(jnp.argmax(aux['logits'], -1) ==
                                 inputs['label'])}

  def reward(self, params, batch_stats, mixing, batch):
    """A cell's accuracy on one validation batch (not augmented), BatchNorm
    on the batch's statistics: ENAS's reward."""
    logits, _ = self.model.apply(
        {'params': params, 'batch_stats': batch_stats},
        self.preprocess(batch['image'], None, False), mixing, train=True,
        mutable=['batch_stats'])
    return jnp.mean(jnp.argmax(logits, -1) == batch['label'])

  def update_scale(self, inputs):
    del inputs
    return 1.0


def build(config, dataset, steps_per_epoch):
  """(space, strategy, model, family, tx, arch_tx, schedule, preprocess)."""
  space = space_of(config.space)
  strategy = strategy_of(config, space)
  model = space.supernet(dataset.num_classes, config.model)
  o, a = config.optimizer, config.arch_optimizer
  schedule = optim.cosine_per_epoch(o.learning_rate, o.learning_rate_min,
                                    epochs=config.epochs,
                                    steps_per_epoch=steps_per_epoch)
  tx = optim.weight_optimizer(schedule, momentum=o.momentum,
                              weight_decay=o.weight_decay,
                              clip=o.grad_clip or None,
                              clip_eps=o.grad_clip_eps, nesterov=o.nesterov)
  # A controller (ENAS) brings its own optimiser; alpha logits take Adam.
  arch_tx = (strategy.arch_tx() if strategy.samples_cells else
             optim.arch_optimizer(a.learning_rate, b1=a.b1, b2=a.b2,
                                  weight_decay=a.weight_decay))
  prep = augment.make_preprocess(mean=dataset.mean, std=dataset.std,
                                 crop_padding=config.data.crop_padding,
                                 flip=config.data.flip)
  family = OneShotFamily(model, prep, strategy, steps_per_epoch,
                         config.epochs)
  return space, strategy, model, family, tx, arch_tx, schedule, prep


def init_state(space, strategy, model, tx, arch_tx, image_shape, seed, mesh):
  k_params, k_alpha, k_state = jax.random.split(jax.random.key(seed), 3)

  def init():
    shapes = space.alpha_shapes()
    alpha = strategy.init_alpha(k_alpha, shapes)
    mixing = {t: mixing_lib.Mixing(jnp.full(s, 1.0 / s[1]))
              for t, s in shapes.items()}
    x = jnp.zeros((2,) + tuple(image_shape))
    variables = model.init(k_params, x, mixing, train=False)
    return SearchState.create(params=variables['params'],
                              batch_stats=variables['batch_stats'],
                              alpha=alpha, tx=tx, arch_tx=arch_tx, rng=k_state)

  return parallel.jit_init(init, mesh)()


def make_controller_update(family, strategy, mesh):
  """`(state, batches, key) -> (state, metrics)`: one REINFORCE update of
  the strategy's controller (`strategies.Enas.update`), sampled cell i
  scored (`family.reward`) on batch i of `batches` ([N, B, ...], sharded
  along B); a non-finite update keeps the old state."""
  def update(state, batches, key):
    def reward(arcs, k):
      del k

      def one(args):
        arc, batch = args
        return family.reward(state.params, state.batch_stats,
                             strategy.arc_mixing(arc), batch)

      return jax.lax.map(one, (arcs, batches))

    alpha, opt_state, metrics = strategy.update(
        state.alpha, state.arch_opt_state, key, reward)
    return train_state.keep_if_finite(
        state, state.replace(alpha=alpha, arch_opt_state=opt_state), metrics)

  rep = parallel.replicated(mesh)
  return jax.jit(update, in_shardings=(rep, parallel.batch_sharding(mesh, 1),
                                       rep),
                 out_shardings=(rep, rep), donate_argnums=(0,))


def cell_frequencies(strategy, n: int = 100):
  """`(alpha, key) -> {cell type: [E, K]}`: the mean mixing weights of `n`
  arcs sampled from the controller, how often each edge computes each op
  (its alpha in history)."""
  def freq(alpha, key):
    mixings = jax.vmap(strategy.arc_mixing)(strategy.sample(alpha, key, n))
    return {t: m.weights.mean(0) for t, m in mixings.items()}
  return jax.jit(freq)


def learnt_cell(space, strategy, alpha):
  """What a strategy has learnt so far: the largest alpha on every edge
  (DARTS, GDAS), the controller's most likely cell (ENAS); None for random
  sampling."""
  if strategy.samples_cells:
    return space.from_decisions(parallel.to_host(strategy.most_likely(alpha)))
  if strategy.learns_alpha:
    return space.from_alpha(parallel.to_host(alpha))
  return None


@dataclasses.dataclass
class Derivation:
  """The derived cell and the scores it was chosen by (higher is better)."""
  cell: Any
  score: float
  random_scores: np.ndarray
  sampled_scores: np.ndarray | None = None


def derive(space, strategy, alpha, score: Callable[[list], np.ndarray],
           num_samples: int, seed: int, cell=None) -> Derivation:
  """The end of a one-shot search.

  `score(cells)` scores architectures (their supernet accuracy on fixed
  validation batches). `num_samples` uniformly random cells (numpy seed
  `seed`) are always scored, for comparison; the derived cell is the
  largest alpha's (DARTS, GDAS), the best of as many cells sampled from the
  controller (ENAS, key `seed + 4`) or the best of the random cells (random
  sampling). `cell`: the cell to score instead of alpha's (an early stop's).
  """
  rng = np.random.default_rng(seed)
  randoms = [space.random_arch(rng) for _ in range(num_samples)]
  random_scores = np.asarray(score(randoms))
  if strategy.samples_cells:
    sampled = parallel.to_host(strategy.sample(
        alpha, jax.random.key(seed + 4), num_samples))
    cells = [space.from_decisions(arc) for arc in sampled]
    scores = np.asarray(score(cells))
    best = int(np.argmax(scores))
    return Derivation(cells[best], float(scores[best]), random_scores, scores)
  if strategy.learns_alpha:
    cell = learnt_cell(space, strategy, alpha) if cell is None else cell
    return Derivation(cell, float(np.asarray(score([cell]))[0]),
                      random_scores)
  best = int(np.argmax(random_scores))
  return Derivation(randoms[best], float(random_scores[best]), random_scores)


def score_cells(state, score, space, cells, batches) -> np.ndarray:
  """Mean accuracy of every cell over `batches`: `score` is the jitted
  `OneShotFamily.reward` (the shared weights, BatchNorm on each batch's
  statistics; one compiled program for every cell)."""
  out = []
  for cell in cells:
    loop.check_terminated()
    mixing = space.arch_mixing(cell)
    accs = [score(state.params, state.batch_stats, mixing, b) for b in batches]
    out.append(float(np.mean(jax.device_get(accs))))
  return np.asarray(out)


def table_report(table_path: str, dataset: str, space, cell,
                 num_random: int, seed: int) -> dict:
  """The derived cell looked up in a NAS-Bench-201 table, beside the
  all-skip cell, the best cell by validation accuracy and random search
  with `num_random` trials (select on -val, report -test)."""
  # pylint: disable-next=g-import-not-at-top
  from nasjax.search_spaces.nb201 import table as table_lib
  t = table_lib.load(table_path)
  val, test = f'{dataset}-val', f'{dataset}-test'
  best = t.best(val)
  mean, std = t.random_search(num_random, dataset, repeats=1000, seed=seed)
  skip = (1,) * len(cell)
  return {'table': table_path, 'index': t.index(cell),
          val: t.accuracy(cell, val), test: t.accuracy(cell, test),
          'all_skip_test': t.accuracy(skip, test),
          'best_by_val': space.to_string(best),
          'best_by_val_test': t.accuracy(best, test),
          f'random_search_{num_random}_test_mean': mean,
          f'random_search_{num_random}_test_std': std}


@dataclasses.dataclass
class OneShotResult:
  """What a one-shot search returns.

  Attributes:
    status: 'completed' or 'interrupted'.
    cell: the derived architecture (the space's encoding), None if
      interrupted.
    cell_string: its string (NB201: the benchmark's).
    history: one `history.EpochRecord` per epoch (softmax(alpha), mean
      metrics, the cell derived at that point in `arcs`).
    state: the final `SearchState`.
    summary: results.json: steps, timings, the derived cell, its supernet
      accuracy beside random cells', and the table lookup when asked.
    workdir: where files went, or None.
  """
  status: str
  cell: Any
  cell_string: str | None
  history: list
  state: SearchState
  summary: dict
  workdir: str | None = None


def _derive_batches(val, config, mesh):
  k = config.derive.batches
  bs = config.batch_size
  if len(val) < bs:
    raise pipeline.DataError(
        f"alpha's part of the training split has {len(val)} examples, fewer "
        f'than one batch of {bs}.')
  out = []
  for i in range(min(k, len(val) // bs)):
    b = {'image': val.images[i * bs:(i + 1) * bs],
         'label': val.labels[i * bs:(i + 1) * bs]}
    out.append(parallel.shard_batch(b, mesh))
  return out


@loop.releases_workdirs
def search(config: ml_collections.ConfigDict, workdir: str | None,
           dataset: pipeline.Dataset, *,
           callback: Callable[[list], None] | None = None,
           progress: str = 'auto') -> OneShotResult:
  """Runs (or, in a used workdir, resumes) a one-shot search.

  Args:
    config: a `nasjax.configs.one_shot_search` config.
    workdir: where checkpoints, TensorBoard events and results go; None:
      nothing is written.
    dataset: its training split is divided into the weights' and alpha's
      parts (`data.train_portion`).
    callback: called with the history after every epoch.
    progress: 'auto', 'bar', 'lines' or 'none'.
  """
  report = progress_lib.Progress(progress, 'search')
  mesh = parallel.make_mesh(config.num_devices or None)
  config_checks.check_one_shot_config(config, mesh.devices.size)
  pipeline.check_image_shape(dataset, config.data.image_shape)
  train, val, per_epoch, total_steps = pipeline.bilevel_halves(
      dataset.train, config.data.train_portion, config.batch_size,
      config.epochs, config.max_steps)
  if workdir is not None:
    loop.prepare_workdir(workdir)
  space, strategy, model, family, tx, arch_tx, schedule, prep = build(
      config, dataset, per_epoch)
  state = init_state(space, strategy, model, tx, arch_tx,
                     dataset.image_shape, config.seed, mesh)
  opened = loop.open_run(workdir, state, mesh, keep=config.keep_checkpoints,
                         expect={'config': config.to_dict()}, report=report,
                         what='search', total_steps=total_steps)
  state, start, ckpt, records = (opened.state, opened.start,
                                 opened.checkpointer, opened.history)

  mode = config.strategy.arch_mode
  step_fn = step_lib.compiled_step(
      family, mesh, arch_mode=mode, learning_rate=schedule, staged=True,
      arch_regularizer=strategies_lib.darts.beta_decay_of(config,
                                                          per_epoch))

  pidx, pcount = parallel.process_info()
  batch_args = dict(process_index=pidx, process_count=pcount,
                    start_step=start)
  train_it = pipeline.batches(train, config.batch_size, seed=config.seed,
                              **batch_args)
  val_it = pipeline.batches(val, config.batch_size, seed=config.seed + 1,
                            **batch_args)
  writer = None
  if workdir is not None and pidx == 0 and not opened.previous:
    # pylint: disable-next=g-import-not-at-top
    from tensorboardX import SummaryWriter
    writer = SummaryWriter(os.path.join(workdir, 'tb'))

  controller = strategy.samples_cells
  if controller:
    update_fn = make_controller_update(family, strategy, mesh)
    frequencies = cell_frequencies(strategy)
    ctrl_key = jax.random.key(config.seed + 3)
    n_upd, n_agg = strategy.train_steps, strategy.num_aggregate
    # The controller's batches: the validation half in its own order, one
    # per sampled cell; a resumed run skips the phases already run.
    ctrl_it = pipeline.batches(
        val, config.batch_size, seed=config.seed + 2, process_index=pidx,
        process_count=pcount, start_step=(start // per_epoch) * n_upd * n_agg)
  phase = {}
  monitor = hessian_lib.SearchMonitor(config.hessian, family, mesh, train,
                                      val, config.batch_size, config.seed)
  early = monitor.early

  def derived(st):
    return learnt_cell(space, strategy, st.alpha)

  def meta_for(st):
    step = int(jax.device_get(st.step))
    return {'step': step, 'epoch': step // per_epoch,
            'data_position': {'train_step': step, 'val_step': step},
            'config': config.to_dict()}

  def end_of_epoch(st, epoch, means):
    means = {**means, **monitor.measure(st, epoch)}
    alpha = parallel.to_host(st.alpha)
    arcs = ([{'arc': space.to_string(derived(st))}]
            if strategy.learns_alpha or controller else None)
    if controller:
      means = dict(means, **reinforce.phase_means(phase.pop('updates', []),
                                              epoch, n_upd, writer))
      weights = parallel.to_host(frequencies(st.alpha, jax.random.fold_in(
          jax.random.key(config.seed + 5), epoch)))
    else:
      weights = history_lib.softmax(alpha)
    record = history_lib.EpochRecord(
        epoch=epoch, step=int(jax.device_get(st.step)), train=dict(means),
        alpha=weights, arcs=arcs)
    history_lib.add(records, record)
    report.message(
        f'epoch {epoch}: ' + ' '.join(f'{k}={v:.4f}' for k, v in
                                      sorted(means.items())) +
        (f' | cell {arcs[0]["arc"]}' if arcs else ''))
    if workdir is not None and pidx == 0:
      history_lib.save(workdir, records)
    if writer is not None:
      for k, v in means.items():
        writer.add_scalar(f'epoch/{k}', v, record.step)
      for t, w in record.alpha.items():
        for e in range(w.shape[0]):
          for k in range(w.shape[1]):
            writer.add_scalar(f'alpha_{t}/edge{e}/op{k}', float(w[e, k]),
                              record.step)
      writer.flush()
    if callback is not None:
      callback(list(records))
    return monitor.should_stop(records, epoch, report)

  weight_step = step_lib.feed(step_fn, mesh, train_it, val_it,
                              mode == 'weights_only')

  def one_step(st, i):
    st, metrics = weight_step(st, i)
    if not controller or (i + 1) % per_epoch:
      return st, metrics
    # The controller's phase ends the epoch: n_upd updates of n_agg cells.
    epoch, updates = i // per_epoch, []
    for u in range(n_upd):
      bs = [next(ctrl_it)[1] for _ in range(n_agg)]
      stack = {k: np.stack([b[k] for b in bs]) for k in bs[0]}
      st, m = update_fn(st, parallel.shard_batch(stack, mesh, axis=1),
                        jax.random.fold_in(ctrl_key, epoch * n_upd + u))
      updates.append(m)
    phase['updates'] = updates
    finite = jnp.all(jnp.stack([m['finite'] for m in updates]))
    return st, {**metrics, 'finite': metrics['finite'] & finite}

  what = (f'the {config.space} {config.strategy.name} step ({mode}, C='
          f'{config.model.channels}, batch {config.batch_size} on '
          f'{mesh.devices.size} {jax.default_backend().upper()} device'
          f'{"s" if mesh.devices.size > 1 else ""})')
  staged = hasattr(step_fn, 'precompile')
  if staged and start < total_steps:
    report.compiling(what)
    batch = parallel.abstract_batch(
        {'image': train.images, 'label': train.labels}, config.batch_size,
        mesh)
    step_fn.precompile(state, batch, batch)
    report.compiled(what)

  t0 = time.time()
  result = loop.run(state, start=start, total_steps=total_steps,
                    steps_per_epoch=per_epoch, step=one_step,
                    checkpointer=ckpt, meta_for=meta_for,
                    end_of_epoch=end_of_epoch, writer=writer,
                    learning_rate=schedule, log_every=config.log_every_steps,
                    checkpoint_every=config.checkpoint_every_steps,
                    report=report, resumed_meta=opened.meta,
                    first_step_compiles=None if staged else what)
  state = result.state
  if writer is not None:
    writer.close()
  if result.status != 'completed':
    return OneShotResult(result.status, None, None, records, state,
                         result.summary(total_steps, t0, mesh.devices.size),
                         workdir)
  if opened.previous:
    p = opened.previous
    return OneShotResult('completed', space.from_string(p['cell']),
                         p['cell'], records, state, p, workdir)

  # Derivation: cells scored on fixed validation batches.
  batches = _derive_batches(val, config, mesh)
  n = config.derive.num_samples
  report.message(f'Deriving: scoring {n} uniformly random cells' +
                 (f' and {n} sampled from the controller' if controller
                  else '') + f' on {len(batches)} validation batches with '
                 'the shared weights.')
  score = jax.jit(family.reward)
  early_cell = (space.from_string(next(
      r.arcs[0]['arc'] for r in records if r.epoch == early['epoch']))
                if early else None)
  d = derive(space, strategy, state.alpha, lambda cells: score_cells(
      state, score, space, cells, batches), n, config.seed, early_cell)
  cell, cell_acc, random_acc = d.cell, d.score, d.random_scores
  summary = {**result.summary(total_steps, t0, mesh.devices.size),
             'space': config.space, 'strategy': config.strategy.name,
             'arch_mode': mode, 'cell': space.to_string(cell),
             'supernet_accuracy': cell_acc,
             'random_supernet_accuracy_median': float(np.median(random_acc)),
             'random_supernet_accuracy_best': float(np.max(random_acc)),
             'random_cells_scored': n,
             **({'early_stop': early} if early else {})}
  if d.sampled_scores is not None:
    summary['sampled_supernet_accuracy_median'] = float(
        np.median(d.sampled_scores))
  if config.table:
    summary['lookup'] = table_report(config.table, config.table_dataset,
                                     space, cell, n, config.seed)
  report.message(
      f'Derived cell: {summary["cell"]} (supernet accuracy {cell_acc:.4f}; '
      f'{n} random cells: median '
      f'{summary["random_supernet_accuracy_median"]:.4f}'
      f', best {summary["random_supernet_accuracy_best"]:.4f})' +
      (f'; {config.table_dataset}-test in the table: '
       f'{summary["lookup"][config.table_dataset + "-test"]:.2f}'
       if config.table else '') + '.')
  if workdir is not None and pidx == 0:
    with open(os.path.join(workdir, 'cell.txt'), 'w') as f:
      f.write(summary['cell'] + '\n')
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(summary, f, indent=1)
    if any(hessian_lib.METRICS[0] in r.train for r in records):
      from nasjax import plot  # pylint: disable=g-import-not-at-top
      plot.save(plot.hessian(records, early.get('epoch')),
                os.path.join(workdir, 'hessian.png'))
  return OneShotResult('completed', cell, summary['cell'], records, state,
                       summary, workdir)
