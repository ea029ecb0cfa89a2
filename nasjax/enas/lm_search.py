"""The ENAS recurrent search loop: shared language-model weights and the
controller on PTB windows, then derive.

`search(config, workdir, corpus)` runs (or resumes) an ENAS recurrent cell
search and returns an `EnasSearchResult`. Each epoch is one pass over the
training split in windows (bptt, or bptt // 2 with probability 0.05, as the
DARTS search reads it: `data.ptb.search_windows`), one sampled cell per
window, the hidden state carried from window to window and reset at every
epoch; then the controller phase: `controller.train_steps` REINFORCE updates
of `controller.num_aggregate` children each, every child scored on its own
validation window of bptt tokens from a zero hidden state (the reference
resets the state before every sample), reward 80 / perplexity. At the end of
every epoch `derive.report_samples` cells are sampled and scored on the
same first `derive.num_windows` validation windows (hidden state carried),
and the best one's perplexity on the whole validation split is recorded;
at the end `derive.num_samples` are, and the best is the result, next to
as many uniformly random cells scored the same way.

The shared cell (`darts.rnn.SharedCell`) takes the arc as a traced input:
two compiled child programs (the two window lengths) serve every cell.

With a workdir it writes what the convolutional ENAS search writes
(`enas.search`): checkpoints (the shared weights, their optimiser, the
controller, its Adam state and baseline, the training hidden state; the
data position is the step), history.json, TensorBoard (child loss,
perplexity, lr; controller reward, baseline, entropy, perplexity per
update; the best sampled cell's perplexity per epoch), arcs/epoch_NNN.
{json,txt,svg}, and at the end arc.{json,txt,svg}, genotype.{json,txt,svg}
(the cell as a `RecurrentGenotype`, what `final.lm_train` retrains) and
results.json.

  result = lm_search.search(configs.enas_rnn('synthetic'), '/tmp/er',
                            ptb.synthetic())
  result.genotype   # an EnasArc; nasjax.retrain_lm(result.genotype, ...)
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

from nasjax import config_checks
from nasjax import genotype as genotype_lib
from nasjax import history as history_lib
from nasjax import loop
from nasjax import parallel
from nasjax import progress as progress_lib
from nasjax import optim
from nasjax.darts import rnn
from nasjax.darts import rnn_search
from nasjax.data import ptb
from nasjax.strategies import controller as controller_lib
from nasjax.strategies import reinforce
from nasjax.enas import search as enas_search
from nasjax.enas import step as step_lib
from nasjax.search_spaces import enas as enas_space


def controller_config(config) -> controller_lib.ControllerConfig:
  c = config.controller
  return controller_lib.ControllerConfig(
      lstm_size=c.lstm_size, temperature=c.temperature or None,
      tanh_constant=c.tanh_constant or None,
      init_scale=controller_lib.RECURRENT.init_scale)


@dataclasses.dataclass(frozen=True)
class Built:
  space: enas_space.RecurrentSpace
  model: rnn.RNNModel
  family: rnn.LanguageModel
  controller: controller_lib.ControllerConfig
  tx: object
  controller_tx: object


def build(config: ml_collections.ConfigDict, vocab_size: int) -> Built:
  """Space, shared model, family and optimisers of a config."""
  m, o, c = config.model, config.optimizer, config.controller
  space = enas_space.RecurrentSpace(num_nodes=m.nodes, output=m.output)
  model = rnn.RNNModel(vocab_size, m.units, shared=space, dropout=m.dropout,
                       dropout_h=m.dropout_h, dropout_x=m.dropout_x,
                       dropout_i=m.dropout_i, dropout_e=m.dropout_e)
  return Built(space, model, rnn.LanguageModel(model, config.bptt, m.tar),
               controller_config(config),
               optim.weight_optimizer(o.learning_rate, momentum=0.0,
                                      weight_decay=o.weight_decay,
                                      clip=o.grad_clip or None),
               reinforce.adam(c.learning_rate, b1=c.b1, eps=c.eps,
                             form=c.adam_form))


def init_state(b: Built, config, mesh) -> step_lib.EnasState:
  k_child, k_ctrl, k_state = jax.random.split(jax.random.key(config.seed), 3)

  def init():
    ctrl = controller_lib.init(k_ctrl, b.space, b.controller)
    arc = jnp.zeros(b.space.arc_shape, jnp.int32)
    v = b.model.init(k_child, jnp.zeros((2, 2), jnp.int32),
                     jnp.zeros((2, config.model.units)), arc)
    return step_lib.EnasState.create(
        params=v['params'], batch_stats={}, controller_params=ctrl, tx=b.tx,
        controller_tx=b.controller_tx, rng=k_state,
        carry=rnn.initial_carry({'train': config.batch_size},
                                config.model.units))

  return parallel.jit_init(init, mesh)()


def steps(config, b: Built, mesh, state) -> enas_search.Steps:
  """The jitted child, controller, scoring and sampling functions (`state`
  gives the state's shardings: `parallel.state_shardings`)."""
  c = config.controller
  child = functools.partial(step_lib.lm_child_step, family=b.family,
                            space=b.space, controller_config=b.controller)
  ctrl = functools.partial(
      step_lib.lm_controller_step, model=b.model, space=b.space,
      controller_config=b.controller, entropy_weight=c.entropy_weight,
      baseline_decay=c.baseline_decay, reward_constant=c.reward_constant)
  score = functools.partial(step_lib.lm_score_arcs, model=b.model,
                            bptt=config.bptt)
  n = config.derive.report_samples
  one = functools.partial(controller_lib.sample, space=b.space,
                          config=b.controller)
  sample = lambda params, key: jax.vmap(one, in_axes=(None, 0))(
      params, jax.random.split(key, n))
  rep = parallel.replicated(mesh)
  return enas_search.Steps(
      parallel.jit_step(child, mesh, state=state),
      parallel.jit_step(ctrl, mesh, batch_axis=1, state=state),
      jax.jit(score, in_shardings=(parallel.state_shardings(state, mesh), rep,
                                   parallel.batch_sharding(mesh)),
              out_shardings=rep),
      jax.jit(sample, out_shardings=rep), n)


def _tensorboard(workdir):
  from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  return SummaryWriter(os.path.join(workdir, 'tb'))


@loop.releases_workdirs
def search(config: ml_collections.ConfigDict, workdir: str | None,
           corpus: ptb.Corpus | None = None, *,
           callback: Callable[[list], None] | None = None,
           progress: str = 'auto') -> enas_search.EnasSearchResult:
  """Runs (or, in a used workdir, resumes) an ENAS recurrent search.

  Args:
    config: an enas_rnn_search config (`nasjax.configs.enas_rnn`).
    workdir, callback, progress: as `darts.rnn_search.search`.
    corpus: token ids (`data.ptb`); None: the one the config names.

  The result's `perplexity` and candidate scores are perplexities on the
  derive windows (lower is better); `.genotype` is the `EnasArc`.
  """
  report = progress_lib.Progress(progress, 'search')
  mesh = parallel.make_mesh(config.num_devices or None)
  config_checks.check_enas_rnn_config(config, mesh.devices.size)
  corpus = corpus if corpus is not None else rnn_search.load_corpus(config)
  pidx, pcount = parallel.process_info()
  rows, bptt, c = config.batch_size, config.bptt, config.controller
  train, per_epoch = ptb.host_matrix(corpus.train, rows, bptt, pidx, pcount)
  valid, valid_windows = ptb.host_matrix(corpus.valid, rows, bptt, pidx,
                                         pcount, 'validation')
  k = min(config.derive.num_windows, valid_windows)
  derive_data = parallel.shard_batch(valid[:, :k * bptt + 1], mesh)
  eval_data = jnp.asarray(ptb.batchify(corpus.valid, config.eval_batch_size))
  if workdir is not None:
    loop.prepare_workdir(workdir)
  total_steps = config.epochs * per_epoch
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)
  b = build(config, corpus.vocab_size)
  state = init_state(b, config, mesh)
  opened = loop.open_run(workdir, state, mesh, keep=config.keep_checkpoints,
                         expect={'config': config.to_dict()}, report=report,
                         what='search', total_steps=total_steps)
  state, start, ckpt, records = (opened.state, opened.start,
                                 opened.checkpointer, opened.history)
  fns = steps(config, b, mesh, state)
  evaluate = jax.jit(functools.partial(rnn.evaluate, b.model, bptt=bptt))
  zero_carry = parallel.shard_batch(
      rnn.initial_carry({'train': rows // pcount}, config.model.units), mesh)
  windows = functools.lru_cache(maxsize=2)(
      lambda epoch: ptb.search_windows(train.shape[1], bptt, config.seed,
                                       epoch))
  key = jax.random.key(config.seed + 2)

  writer = None
  if workdir is not None and pidx == 0 and not opened.previous:
    writer = _tensorboard(workdir)
    os.makedirs(os.path.join(workdir, 'arcs'), exist_ok=True)

  n_dev = mesh.devices.size
  on = (f'on {n_dev} {jax.default_backend().upper()} device'
        f'{"s" if n_dev > 1 else ""}')
  fns.controller = enas_search.announce_first_call(
      fns.controller, report, f'the controller update ({c.num_aggregate} '
      f'children, {rows} rows x {bptt} tokens {on})')
  fns.score = enas_search.announce_first_call(
      fns.score, report, f'the cell scorer ({fns.n} cells, {k} windows {on})')

  def controller_windows(update: int) -> dict:
    """The validation windows of controller update `update` (counted from
    the start of the search): consecutive, wrapping around the split."""
    first = update * c.num_aggregate
    xs, ys = zip(*(ptb.window(valid, ((first + j) % valid_windows) * bptt,
                              bptt) for j in range(c.num_aggregate)))
    return {'inputs': np.stack(xs), 'targets': np.stack(ys)}

  phase = {}

  def one_step(st, i):
    epoch, w = divmod(i, per_epoch)
    if w == 0:  # The hidden state starts every epoch from zero.
      st = st.replace(carry=jax.tree.map(jnp.copy, zero_carry))
    position, length = windows(epoch)[w]
    x, y = ptb.window(train, position, length)
    st, metrics = fns.child(st, parallel.shard_batch(
        {'inputs': x, 'targets': y}, mesh))
    if w + 1 < per_epoch:
      return st, metrics
    st, phase['updates'], finite = enas_search.controller_phase(
        st, fns, (controller_windows(epoch * c.train_steps + u)
                  for u in range(c.train_steps)), mesh)
    return st, {**metrics, 'finite': metrics['finite'] & finite,
                'controller_finite': finite}

  def meta_for(st):
    step = int(jax.device_get(st.step))
    return {'step': step, 'epoch': step // per_epoch,
            'data_position': {'epoch': step // per_epoch,
                              'window': step % per_epoch},
            'config': config.to_dict()}

  def candidates(st, seed_key, num):
    arcs, scores = enas_search.derive(st, fns, derive_data, seed_key, num)
    return arcs, [rnn.perplexity(-float(v)) for v in scores]

  def end_of_epoch(st, epoch, means):
    means = dict(means, **reinforce.phase_means(
        phase.pop('updates', []), epoch, c.train_steps, writer))
    if 'train_ce' in means:
      means['train_perplexity'] = rnn.perplexity(means['train_ce'])
    arcs, ppls = candidates(st, jax.random.fold_in(key, epoch),
                            config.derive.report_samples)
    valid_ce = float(evaluate(st.params, {}, arcs[0], eval_data))
    means.update(valid_ce=valid_ce,
                 valid_perplexity=rnn.perplexity(valid_ce))
    best = [{'arc': enas_space.to_string(a), 'perplexity': p}
            for a, p in zip(arcs, ppls)]
    step = int(jax.device_get(st.step))
    history_lib.add(records, history_lib.EpochRecord(
        epoch=epoch, step=step, train=means, arcs=best))
    cell = b.space.to_genotype(arcs[0])
    reward = means.get('controller/reward')
    report.message(
        f'epoch {epoch}: valid perplexity {means["valid_perplexity"]:.2f} '
        f'(best of {len(best)} sampled cells; {ppls[0]:.2f} on the derive '
        'windows)' + ('' if reward is None else
                      f', controller reward {reward:.4f}') + f' | {cell}')
    if workdir is not None and pidx == 0:
      enas_space.write_files(b.space, arcs[0], os.path.join(
          workdir, 'arcs', f'epoch_{epoch:03d}'))
      history_lib.save(workdir, records)
    if writer is not None:
      for name, v in means.items():
        if not name.startswith('controller/'):
          writer.add_scalar(f'epoch/{name}', v, step)
      writer.add_scalar('epoch/best_sampled_perplexity', ppls[0], step)
      writer.add_scalar('epoch/median_sampled_perplexity',
                        float(np.median(ppls)), step)
      writer.flush()
    if callback is not None:
      callback(list(records))

  what = (f'the ENAS recurrent child step ({config.model.units} units, '
          f'{config.model.nodes} nodes, batch {rows}, bptt {bptt} {on}; a '
          'second compile follows at the first short window)')
  t0 = time.time()
  result = loop.run(state, start=start, total_steps=total_steps,
                    steps_per_epoch=per_epoch, step=one_step,
                    checkpointer=ckpt, meta_for=meta_for,
                    end_of_epoch=end_of_epoch, writer=writer,
                    learning_rate=lambda _: config.optimizer.learning_rate,
                    log_every=config.log_every_steps,
                    checkpoint_every=config.checkpoint_every_steps,
                    report=report, resumed_meta=opened.meta,
                    first_step_compiles=what)
  state = result.state
  summary = {**result.summary(total_steps, t0, n_dev), 'space': 'recurrent'}
  if result.status != 'completed':
    if writer is not None:
      writer.close()
    return enas_search.EnasSearchResult(
        result.status, None, None, [], records, state, b.space, summary,
        workdir, b.controller)
  if opened.previous:
    if writer is not None:
      writer.close()
    p = opened.previous
    return enas_search.EnasSearchResult(
        'completed', enas_space.from_dict(p['arc'])[1], None,
        [tuple(c) for c in p['candidates']], records, state, b.space, p,
        workdir, b.controller, perplexity=p['derive_perplexity'])
  report.message(f'Deriving: {config.derive.num_samples} sampled cells, each '
                 f'scored on the same {k} validation windows.')
  arcs, ppls = candidates(state, jax.random.fold_in(key, 1 << 20),
                          config.derive.num_samples)
  rand = [rnn.perplexity(-float(v)) for v in enas_search.score_random(
      state, fns, b.space, derive_data, config.seed,
      config.derive.num_samples)]
  valid_ce = float(evaluate(state.params, {}, arcs[0], eval_data))
  cell = b.space.to_genotype(arcs[0])
  report.message(
      f'Derived cell: {cell} [{enas_space.to_string(arcs[0])}] (perplexity '
      f'{ppls[0]:.2f} on the derive windows, {rnn.perplexity(valid_ce):.2f} '
      f'on the validation split with the shared weights; the controller\'s '
      f'{len(ppls)} samples: median {np.median(ppls):.2f}; {len(rand)} '
      f'uniformly random cells: median {np.median(rand):.2f}, best '
      f'{np.min(rand):.2f}).')
  summary.update({
      'arc': enas_space.to_dict(b.space, arcs[0]),
      'genotype': cell.to_dict(),
      'derive_perplexity': ppls[0],
      'derive_median_perplexity': float(np.median(ppls)),
      'random_median_perplexity': float(np.median(rand)),
      'random_best_perplexity': float(np.min(rand)),
      'valid_perplexity': rnn.perplexity(valid_ce),
      'candidates': [(enas_space.to_string(a), p)
                     for a, p in zip(arcs, ppls)]})
  out = enas_search.EnasSearchResult(
      'completed', arcs[0], None, summary['candidates'], records, state,
      b.space, summary, workdir, b.controller, perplexity=ppls[0])
  if writer is not None:
    writer.add_scalar('derive/best_perplexity', ppls[0], summary['step'])
    writer.close()
  if workdir is None or pidx != 0:
    return out
  enas_space.write_files(b.space, arcs[0], os.path.join(workdir, 'arc'))
  genotype_lib.write_files(cell, os.path.join(workdir, 'genotype'))
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return out
