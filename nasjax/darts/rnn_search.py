"""The DARTS recurrent search loop: PTB windows, the bilevel step, history.

`search(config, workdir, corpus)` runs (or resumes) a recurrent cell search
and returns an `RnnSearchResult`. The weights train on the training split and
alpha on the validation split, both laid out as [batch_size, tokens] and read
in windows (`data.ptb`): step i reads training window i of its epoch (bptt
or bptt // 2 tokens) and the validation window of bptt tokens at the same
position (modulo the split's length). Each stream carries its hidden state
from window to window (`SearchState.carry`); both start from zero at every
epoch, as in the reference. After every epoch the genotype is derived and
the validation split evaluated (perplexity, without dropout). The supernet's
BatchNorm normalises each time step with the statistics of the evaluated
rows, as in training: with running statistics (the reference's evaluation
mode) the recurrence amplifies any error in them, and small or young
supernets evaluate to NaN.

With a workdir it writes what the convolutional search writes (`darts.search`):
checkpoints (the state with both hidden states; the data position is the
step), history.json, TensorBoard (losses, perplexities, lr, softmax(alpha)
per edge), genotypes/epoch_NNN.{json,txt,svg}, and at the end
genotype.{json,txt,svg}, alpha.png (`plot.recurrent_alpha`) and
results.json.

Synopsis:

  result = rnn_search.search(configs.rnn_search('synthetic'), '/tmp/rnn',
                             ptb.synthetic())
  result.genotype, result.history[-1].train['valid_perplexity']
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
import optax

from nasjax import config_checks
from nasjax import errors
from nasjax import genotype as genotype_lib
from nasjax import history as history_lib
from nasjax import loop
from nasjax import parallel
from nasjax import progress as progress_lib
from nasjax import optim
from nasjax.darts import rnn
from nasjax import bilevel as step_lib
from nasjax.data import ptb
from nasjax.genotype import recurrent
from nasjax.search_spaces import darts_rnn
from nasjax.train_state import SearchState


def load_corpus(config: ml_collections.ConfigDict) -> ptb.Corpus:
  """The corpus a config names: PTB files in data.data_dir, or generated."""
  if config.data.name == 'synthetic':
    return ptb.synthetic(config.data.synthetic_vocab,
                         tuple(config.data.synthetic_tokens), seed=config.seed)
  if not config.data.data_dir:
    raise errors.ConfigError(
        "config.data.data_dir: data.name='ptb' needs the directory of "
        'ptb.train.txt, ptb.valid.txt and ptb.test.txt (data/README.md).')
  return ptb.load(config.data.data_dir)


@dataclasses.dataclass(frozen=True)
class Built:
  space: darts_rnn.DartsRnnSpace
  model: rnn.RNNModel
  family: rnn.LanguageModel
  tx: optax.GradientTransformation
  arch_tx: optax.GradientTransformation
  learning_rate: Callable


def build(config: ml_collections.ConfigDict, vocab_size: int) -> Built:
  """Space, model, family and optimisers of a recurrent search config."""
  m, o, a = config.model, config.optimizer, config.arch_optimizer
  space = darts_rnn.DartsRnnSpace(tuple(config.search_space.primitives),
                                  config.search_space.steps)
  model = rnn.RNNModel(vocab_size, m.units, space=space, dropout=m.dropout,
                       dropout_h=m.dropout_h, dropout_x=m.dropout_x,
                       dropout_i=m.dropout_i, dropout_e=m.dropout_e)
  family = rnn.LanguageModel(model, bptt=config.bptt, tar=m.tar)
  learning_rate = lambda step: o.learning_rate
  tx = optim.weight_optimizer(o.learning_rate, momentum=0.0,
                              weight_decay=o.weight_decay,
                              clip=o.grad_clip or None,
                              clip_eps=o.grad_clip_eps)
  arch_tx = optim.arch_optimizer(a.learning_rate, b1=a.b1, b2=a.b2,
                                 weight_decay=a.weight_decay)
  return Built(space, model, family, tx, arch_tx, learning_rate)


def init_state(b: Built, config, mesh) -> SearchState:
  k_params, k_alpha, k_state = jax.random.split(jax.random.key(config.seed),
                                                3)

  def init():
    alpha = rnn.init_alpha(b.space, k_alpha)
    v = b.model.init(k_params, jnp.zeros((2, 2), jnp.int32),
                     jnp.zeros((2, config.model.units)), alpha)
    return SearchState.create(
        params=v['params'], batch_stats=v['batch_stats'], alpha=alpha,
        tx=b.tx, arch_tx=b.arch_tx, rng=k_state,
        carry=rnn.initial_carry({'train': config.batch_size,
                                 'val': config.batch_size},
                                config.model.units))

  return parallel.jit_init(init, mesh)()


@dataclasses.dataclass
class RnnSearchResult:
  """What a recurrent search returns (as `darts.search.SearchResult`)."""
  status: str
  genotype: recurrent.RecurrentGenotype
  history: list[history_lib.EpochRecord]
  state: SearchState
  space: darts_rnn.DartsRnnSpace
  summary: dict
  workdir: str | None = None


def _tensorboard(workdir, space):
  from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  writer = SummaryWriter(os.path.join(workdir, 'tb'))
  writer.add_custom_scalars({'alpha recurrent': {
      f'node {i} <- node {j}': ['Multiline', [
          f'alpha_recurrent/node{i}_pred{j}/{op}' for op in space.primitives]]
      for i, j in space.edges()}})
  return writer


@loop.releases_workdirs
def search(config: ml_collections.ConfigDict, workdir: str | None,
           corpus: ptb.Corpus | None = None, *,
           callback: Callable[[list[history_lib.EpochRecord]], None]
           | None = None,
           progress: str = 'auto') -> RnnSearchResult:
  """Runs (or, in a used workdir, resumes) a DARTS recurrent search.

  Args:
    config: a darts_rnn_search config (`nasjax.configs.rnn_search`).
    workdir: where files go; None: nothing is written or resumed.
    corpus: the token ids (`data.ptb.load`, `data.ptb.synthetic`); None:
      the one the config names (`load_corpus`).
    callback: called with the history after every epoch.
    progress: 'auto', 'bar', 'lines' or 'none'.

  Raises `errors.UserError` (config, data, workdir, another run's workdir)
  before any work, and `loop.NonFiniteError` if a step is not finite.
  """
  report = progress_lib.Progress(progress, 'search')
  mesh = parallel.make_mesh(config.num_devices or None)
  config_checks.check_rnn_search_config(config, mesh.devices.size)
  corpus = corpus if corpus is not None else load_corpus(config)
  pidx, pcount = parallel.process_info()
  rows, bptt = config.batch_size, config.bptt
  train, per_epoch = ptb.host_matrix(corpus.train, rows, bptt, pidx, pcount)
  alpha_data, _ = ptb.host_matrix(corpus.valid, rows, bptt, pidx, pcount,
                                  'validation')
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
                         what='recurrent search', total_steps=total_steps)
  state, start, ckpt, records = (opened.state, opened.start,
                                 opened.checkpointer, opened.history)

  s = config.search
  step_fn = parallel.jit_step(
      functools.partial(step_lib.search_step, model=b.family,
                        arch_mode=s.arch_mode, learning_rate=b.learning_rate,
                        fd_radius=s.fd_radius,
                        second_order_impl=s.second_order_impl),
      mesh, num_batches=2, state=state)
  # The supernet is evaluated with batch statistics (see the docstring).
  evaluate = jax.jit(functools.partial(rnn.evaluate, b.model, bptt=bptt,
                                       batch_norm_train=True))
  zero_carry = parallel.shard_batch(rnn.initial_carry(
      {'train': rows // pcount, 'val': rows // pcount}, config.model.units),
                                    mesh)
  windows = functools.lru_cache(maxsize=2)(
      lambda epoch: ptb.search_windows(train.shape[1], bptt, config.seed,
                                       epoch))

  writer = None
  if workdir is not None and pidx == 0 and not opened.previous:
    writer = _tensorboard(workdir, b.space)
    os.makedirs(os.path.join(workdir, 'genotypes'), exist_ok=True)

  def derive(st):
    return recurrent.from_alpha(
        parallel.to_host(st.alpha)[darts_rnn.CELL], b.space)

  def meta_for(st):
    step = int(jax.device_get(st.step))
    return {'step': step, 'epoch': step // per_epoch,
            'data_position': {'epoch': step // per_epoch,
                              'window': step % per_epoch},
            'genotype': derive(st).to_dict(), 'config': config.to_dict()}

  def end_of_epoch(st, epoch, means):
    g = derive(st)
    valid_ce = float(evaluate(st.params, st.batch_stats, st.alpha, eval_data))
    means = dict(means, valid_ce=valid_ce,
                 valid_perplexity=rnn.perplexity(valid_ce))
    for k in ('train_ce', 'val_ce'):
      if k in means:
        means[k.replace('_ce', '_perplexity')] = rnn.perplexity(means[k])
    record = history_lib.EpochRecord(
        epoch=epoch, step=int(jax.device_get(st.step)), train=means,
        alpha=history_lib.softmax(parallel.to_host(st.alpha)), genotype=g)
    history_lib.add(records, record)
    report.message(f'epoch {epoch}: valid perplexity '
                   f'{means["valid_perplexity"]:.2f}, train cross-entropy '
                   f'{means.get("train_ce", float("nan")):.4f} | genotype {g}')
    if workdir is not None and pidx == 0:
      genotype_lib.write_files(
          g, os.path.join(workdir, 'genotypes', f'epoch_{epoch:03d}'))
      history_lib.save(workdir, records)
    if writer is not None:
      for k, v in means.items():
        writer.add_scalar(f'epoch/{k}', v, record.step)
      w = record.alpha[darts_rnn.CELL]
      for e, (i, j) in enumerate(b.space.edges()):
        for k, op in enumerate(b.space.primitives):
          writer.add_scalar(f'alpha_recurrent/node{i}_pred{j}/{op}',
                            float(w[e, k]), record.step)
      writer.flush()
    if callback is not None:
      callback(list(records))

  def one_step(st, i):
    epoch, k = divmod(i, per_epoch)
    if k == 0:  # Both streams start every epoch from zero hidden states.
      st = st.replace(carry=jax.tree.map(jnp.copy, zero_carry))
    position, length = windows(epoch)[k]
    x, y = ptb.window(train, position, length)
    vx, vy = ptb.window(alpha_data, position % (alpha_data.shape[1] - bptt),
                        bptt)
    return step_fn(st, parallel.shard_batch({'inputs': x, 'targets': y},
                                            mesh),
                   parallel.shard_batch({'inputs': vx, 'targets': vy}, mesh))

  what = (f'the {s.arch_mode} recurrent search step ({config.model.units} '
          f'units, batch {rows}, bptt {bptt} on {mesh.devices.size} '
          f'{jax.default_backend().upper()} device'
          f'{"s" if mesh.devices.size > 1 else ""}; a second compile follows '
          'at the first short window)')
  t0 = time.time()
  result = loop.run(state, start=start, total_steps=total_steps,
                    steps_per_epoch=per_epoch, step=one_step,
                    checkpointer=ckpt, meta_for=meta_for,
                    end_of_epoch=end_of_epoch, writer=writer,
                    learning_rate=b.learning_rate,
                    log_every=config.log_every_steps,
                    checkpoint_every=config.checkpoint_every_steps,
                    report=report, resumed_meta=opened.meta,
                    first_step_compiles=what)
  state = result.state
  if writer is not None:
    writer.close()
  g = derive(state)
  last = records[-1].train if records else {}
  summary = {**result.summary(total_steps, t0, mesh.devices.size),
             'genotype': g.to_dict(),
             'valid_perplexity': last.get('valid_perplexity')}
  summary = opened.previous or summary
  out = RnnSearchResult(result.status, g, records, state, b.space, summary,
                        workdir)
  if (result.status != 'completed' or workdir is None or pidx != 0 or
      opened.previous):
    return out
  genotype_lib.write_files(g, os.path.join(workdir, 'genotype'))
  if records:
    from nasjax import plot  # pylint: disable=g-import-not-at-top
    plot.save(plot.recurrent_alpha(out), os.path.join(workdir, 'alpha.png'))
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(summary, f, indent=1)
  return out
