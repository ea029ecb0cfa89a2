"""Retraining a recurrent genotype: the AWD-LSTM-style language model.

`train(config, workdir, corpus, genotype)` trains `darts.rnn.RNNModel` with
the genotype's cell from scratch as the DARTS code's rnn/train.py does (the
ENAS paper's training is the same recipe) and returns an `LMTrainResult`
(validation and test perplexity, parameter count, history, state):

* windows of the AWD-LSTM variable length (`data.ptb.retrain_length`), padded
  to a multiple of `length_bucket` tokens with the padding masked, so a few
  compiled programs serve every length; the update is scaled by
  seq_len / bptt (the reference rescales the learning rate);
* SGD with the gradient clipped, coupled weight decay, cross-entropy plus
  temporal activation regularisation, the papers' dropouts;
* averaged SGD: after an epoch whose validation loss is worse than the best
  of the epochs before the last `nonmono` (the reference's non-monotone
  trigger), every later weight step also updates the running mean of the
  weights since the switch (PyTorch's ASGD with t0 = 0, lambd = 0, whose
  step is plain SGD); from then on every evaluation uses the averaged
  weights, as the reference does (without it the published perplexities
  are not reached).

Validation after every epoch, test at the end, both in evaluation mode with
the hidden state carried over the whole split. The test perplexity is that
of the final (averaged) weights; the reference reports the weights of its
best validation epoch (docs/from_reference_code.md).

With a workdir: checkpoints (weights, optimiser, the average, both the
hidden state and the data position, and the validation losses the trigger
reads), history.json, TensorBoard, genotype.{json,txt,svg}, results.json.

Synopsis:

  result = lm_train.train(configs.language_model('synthetic'), '/tmp/lm',
                          ptb.synthetic(), genotype.get('DARTS_V2_RNN'))
  result.test_perplexity, result.param_count
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
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
from nasjax.search_spaces import enas as enas_space
from nasjax.train_state import SearchState


class LMState(SearchState):
  """A `SearchState` with no alpha (the cell is fixed) and the ASGD average:
  `average` (the mean of the weights after each step since the switch),
  `average_count` (how many) and `averaging` (whether the switch happened).
  """
  average: Any
  average_count: jax.Array
  averaging: jax.Array

  @classmethod
  def create_lm(cls, *, params, tx, rng, carry):
    base = SearchState.create(params=params, batch_stats={}, alpha={}, tx=tx,
                              arch_tx=optax.identity(), rng=rng, carry=carry)
    fields = {f.name: getattr(base, f.name)
              for f in dataclasses.fields(SearchState)}
    return cls(**fields, average=jax.tree.map(jnp.zeros_like, params),
               average_count=jnp.zeros((), jnp.int32),
               averaging=jnp.zeros((), bool))

  def checkpoint_items(self) -> dict[str, Any]:
    return {k: getattr(self, k) for k in (
        'step', 'params', 'opt_state', 'rng', 'carry', 'average',
        'average_count', 'averaging')}

  def eval_params(self):
    """The weights evaluation uses: the average once averaging started."""
    return jax.tree.map(lambda a, p: jnp.where(self.averaging, a, p),
                        self.average, self.params)


def train_step(state: LMState, batch, *, family: rnn.LanguageModel):
  """One weight step (`bilevel.weight_step` with the language-model
  family), then the running mean of the weights when averaging."""
  new, metrics = step_lib.weight_step(state, batch, model=family)
  on = new.averaging & metrics['finite']
  count = new.average_count + on.astype(jnp.int32)
  average = jax.tree.map(
      lambda a, p: jnp.where(on, a + (p - a) / jnp.maximum(count, 1), a),
      new.average, new.params)
  return new.replace(average=average, average_count=count), metrics


def start_averaging(state: LMState) -> LMState:
  """The switch to averaged SGD: the average restarts from the next step."""
  return state.replace(averaging=jnp.ones((), bool),
                       average_count=jnp.zeros((), jnp.int32))


def nonmonotone_trigger(losses: list[float], loss: float, nonmono: int
                        ) -> bool:
  """The reference's switch to averaged SGD: `loss` (this epoch's
  validation loss; `losses` the earlier epochs') is worse than the best of
  the epochs before the last `nonmono`."""
  if len(losses) <= nonmono:
    return False
  return loss > min(losses[:len(losses) - nonmono])


def make_model(config, vocab_size: int,
               genotype: recurrent.RecurrentGenotype) -> rnn.RNNModel:
  m = config.model
  return rnn.RNNModel(vocab_size, m.units, genotype=genotype,
                      dropout=m.dropout, dropout_h=m.dropout_h,
                      dropout_x=m.dropout_x, dropout_i=m.dropout_i,
                      dropout_e=m.dropout_e)


def param_count(model: rnn.RNNModel) -> int:
  """Weights of the language model (the tied decoder counted once)."""
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, 2), jnp.int32),
      jnp.zeros((1, model.units))))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


def epoch_windows(num_tokens: int, bptt: int, seed: int, epoch: int, *,
                  max_delta: int, bucket: int
                  ) -> list[tuple[int, int, int]]:
  """(position, length, padded length) of the windows of one epoch.

  (num_tokens - 1) // bptt windows of AWD-LSTM lengths, read in order; a
  window that would pass the end is cut to fit, and the rare epoch whose
  lengths run past the end restarts from position 0. A pure function of
  (seed, epoch), so a resumed run reads the same windows.
  """
  rng = np.random.default_rng([seed, epoch, 0x1a7])
  out, position = [], 0
  for _ in range((num_tokens - 1) // bptt):
    if position >= num_tokens - 2:
      position = 0
    length = min(ptb.retrain_length(bptt, rng, max_delta),
                 num_tokens - 1 - position)
    out.append((position, length, -(-length // bucket) * bucket))
    position += length
  return out


def padded_window(data: np.ndarray, position: int, length: int,
                  padded: int) -> dict[str, np.ndarray]:
  x, y = ptb.window(data, position, length)
  pad = ((0, 0), (0, padded - length))
  mask = np.pad(np.ones_like(x, np.int32), pad)
  return {'inputs': np.pad(x, pad), 'targets': np.pad(y, pad),
          'mask': mask}


@dataclasses.dataclass
class LMTrainResult:
  status: str
  valid_perplexity: float | None
  test_perplexity: float | None
  param_count: int
  history: list[history_lib.EpochRecord]
  state: LMState
  summary: dict
  workdir: str | None = None


def recurrent_cell(arch, name: str = '') -> recurrent.RecurrentGenotype:
  """`arch` as a `RecurrentGenotype`: itself, or an ENAS recurrent arc's
  cell (`RecurrentSpace.to_genotype`); anything else is a ConfigError."""
  if isinstance(arch, recurrent.RecurrentGenotype):
    return arch
  if (isinstance(arch, enas_space.EnasArc) and
      isinstance(arch.space, enas_space.RecurrentSpace)):
    return arch.space.to_genotype(arch.arc)
  raise errors.ConfigError(
      f'config.genotype: {name or arch!r} is not a recurrent cell; the '
      f'language model takes one of {list(recurrent.RECURRENT_ZOO)}, '
      "'ENAS_RNN_LM', a genotype.json or arc.json a recurrent search wrote, "
      'or its notation.')


@loop.releases_workdirs
def train(config: ml_collections.ConfigDict, workdir: str | None,
          corpus: ptb.Corpus | None = None,
          genotype: recurrent.RecurrentGenotype | None = None, *,
          callback: Callable[[list[history_lib.EpochRecord]], None]
          | None = None, progress: str = 'auto') -> LMTrainResult:
  """Runs (or, in a used workdir, resumes) a language-model retraining.

  Args:
    config: an lm_train config (`nasjax.configs.lm_train`).
    workdir: where files go; None: nothing is written or resumed.
    corpus: token ids (`data.ptb`); None: the one the config names.
    genotype: the recurrent cell; None: `config.genotype` (a published name,
      a file a search wrote, or its notation).
    callback: called with the history after every epoch.
    progress: 'auto', 'bar', 'lines' or 'none'.
  """
  report = progress_lib.Progress(progress, 'train')
  mesh = parallel.make_mesh(config.num_devices or None)
  config_checks.check_lm_train_config(config, mesh.devices.size)
  if genotype is None:
    genotype = genotype_lib.load(config.genotype)
  genotype = recurrent_cell(genotype, config.genotype)
  if corpus is None:
    from nasjax.darts import rnn_search  # pylint: disable=g-import-not-at-top
    corpus = rnn_search.load_corpus(config)
  pidx, pcount = parallel.process_info()
  rows, bptt = config.batch_size, config.bptt
  train_data, per_epoch = ptb.host_matrix(corpus.train, rows, bptt, pidx,
                                          pcount)
  valid = jnp.asarray(ptb.batchify(corpus.valid, config.eval_batch_size))
  test = jnp.asarray(ptb.batchify(corpus.test, config.test_batch_size))
  if workdir is not None:
    loop.prepare_workdir(workdir)
  total_steps = config.epochs * per_epoch
  if config.max_steps:
    total_steps = min(total_steps, config.max_steps)

  model = make_model(config, corpus.vocab_size, genotype)
  family = rnn.LanguageModel(model, bptt=bptt, tar=config.model.tar)
  o = config.optimizer
  tx = optim.weight_optimizer(o.learning_rate, momentum=0.0,
                              weight_decay=o.weight_decay,
                              clip=o.grad_clip or None,
                              clip_eps=o.grad_clip_eps)
  k_params, k_state = jax.random.split(jax.random.key(config.seed))

  def init():
    v = model.init(k_params, jnp.zeros((2, 2), jnp.int32),
                   jnp.zeros((2, model.units)))
    return LMState.create_lm(params=v['params'], tx=tx, rng=k_state,
                             carry=rnn.initial_carry({'train': rows},
                                                     model.units))

  state = parallel.jit_init(init, mesh)()
  count = param_count(model)
  expect = {'config': config.to_dict(), 'genotype': genotype.to_dict()}
  opened = loop.open_run(workdir, state, mesh, keep=config.keep_checkpoints,
                         expect=expect, report=report,
                         what='language-model training',
                         total_steps=total_steps)
  state, start, ckpt, records = (opened.state, opened.start,
                                 opened.checkpointer, opened.history)
  # The validation losses the averaging trigger reads, in SGD epochs.
  val_losses = list((opened.meta or {}).get('val_losses', []))

  step_fn = parallel.jit_step(functools.partial(train_step, family=family),
                              mesh, state=state)
  evaluate = jax.jit(functools.partial(rnn.evaluate, model, bptt=bptt))
  zero_carry = parallel.shard_batch(
      rnn.initial_carry({'train': rows // pcount}, model.units), mesh)
  windows = functools.lru_cache(maxsize=2)(
      lambda epoch: epoch_windows(train_data.shape[1], bptt, config.seed,
                                  epoch, max_delta=config.max_seq_len_delta,
                                  bucket=config.length_bucket))
  writer = None
  if workdir is not None and pidx == 0 and not opened.previous:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    writer = SummaryWriter(os.path.join(workdir, 'tb'))
    genotype_lib.write_files(genotype, os.path.join(workdir, 'genotype'))

  def meta_for(st):
    step = int(jax.device_get(st.step))
    return {'step': step, 'epoch': step // per_epoch,
            'data_position': {'epoch': step // per_epoch,
                              'window': step % per_epoch},
            'val_losses': list(val_losses), 'switch_pending': state_switch,
            'config': config.to_dict(),
            'genotype': genotype.to_dict()}

  def end_of_epoch(st, epoch, means):
    nonlocal state_switch
    averaging = bool(jax.device_get(st.averaging))
    ce = float(evaluate(st.eval_params(), {}, None, valid))
    means = dict(means, valid_ce=ce, valid_perplexity=rnn.perplexity(ce),
                 averaging=float(averaging))
    if 'train_ce' in means:
      means['train_perplexity'] = rnn.perplexity(means['train_ce'])
    if not averaging and (epoch + 1) * per_epoch <= int(
        jax.device_get(st.step)):
      # The reference's non-monotone trigger (or the configured epoch).
      if (nonmonotone_trigger(val_losses, ce, o.nonmono) or
          (o.average_from_epoch and epoch + 1 >= o.average_from_epoch)):
        state_switch = True
      val_losses.append(ce)
    record = history_lib.EpochRecord(epoch=epoch,
                                     step=int(jax.device_get(st.step)),
                                     train=means)
    history_lib.add(records, record)
    report.message(f'epoch {epoch}: valid perplexity '
                   f'{means["valid_perplexity"]:.2f}'
                   f'{" (averaged weights)" if averaging else ""}'
                   f'{"; averaging from the next step" if state_switch else ""}')
    if workdir is not None and pidx == 0:
      history_lib.save(workdir, records)
    if writer is not None:
      for k, v in means.items():
        writer.add_scalar(f'epoch/{k}', v, record.step)
      writer.flush()
    if callback is not None:
      callback(list(records))

  # Set at the end of an epoch that triggers averaging; applied before the
  # next step (a checkpoint in between records it, so a resumption too).
  state_switch = bool((opened.meta or {}).get('switch_pending', False))

  def one_step(st, i):
    nonlocal state_switch
    if state_switch:
      st, state_switch = start_averaging(st), False
    epoch, k = divmod(i, per_epoch)
    if k == 0:
      st = st.replace(carry=jax.tree.map(jnp.copy, zero_carry))
    batch = padded_window(train_data, *windows(epoch)[k])
    return step_fn(st, parallel.shard_batch(batch, mesh))

  what = (f'the language-model step ({model.units} units, batch {rows}; one '
          f'compile per window length bucket of {config.length_bucket})')
  t0 = time.time()
  result = loop.run(state, start=start, total_steps=total_steps,
                    steps_per_epoch=per_epoch, step=one_step,
                    checkpointer=ckpt, meta_for=meta_for,
                    end_of_epoch=end_of_epoch, writer=writer,
                    log_every=config.log_every_steps,
                    checkpoint_every=config.checkpoint_every_steps,
                    report=report, resumed_meta=opened.meta,
                    first_step_compiles=what)
  state = result.state
  if state_switch:  # The last epoch triggered it: record it in the state.
    state = start_averaging(state)
  valid_ce = records[-1].train['valid_ce'] if records else None
  test_ce = None
  if result.status == 'completed' and not opened.previous:
    test_ce = float(evaluate(state.eval_params(), {}, None, test))
  summary = {
      **result.summary(total_steps, t0, mesh.devices.size),
      'param_count': count, 'genotype': genotype.to_dict(),
      'averaging': bool(jax.device_get(state.averaging)),
      'averaged_steps': int(jax.device_get(state.average_count)),
      'valid_perplexity': (None if valid_ce is None else
                           rnn.perplexity(valid_ce)),
      'test_perplexity': (None if test_ce is None else
                          rnn.perplexity(test_ce)),
  }
  if writer is not None:
    if test_ce is not None:
      writer.add_scalar('test/perplexity', rnn.perplexity(test_ce),
                        summary['step'])
    writer.close()
  summary = opened.previous or summary
  out = LMTrainResult(result.status, summary['valid_perplexity'],
                      summary['test_perplexity'], count, records, state,
                      summary, workdir)
  if (result.status == 'completed' and workdir is not None and pidx == 0 and
      not opened.previous):
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(summary, f, indent=1)
  return out
