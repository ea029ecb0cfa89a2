"""Checks of the run configs, before any work: every refusal names its field.

`check_search_config` (a DARTS search), `check_train_config` (retraining a
genotype) and `check_selection_config` (all stages, plus their links) raise
`errors.ConfigError`. `devices` is the number of devices the run will shard
its batches over: training batches must divide across them; evaluation
batches are rounded up to a multiple of it (the padding is masked), so any
eval batch size works on any device count.

What needs the data (a batch larger than its split) is checked when the data
is loaded, with the same field names.
"""

import difflib
import functools
import importlib

from nasjax import errors
from nasjax import layers
from nasjax import ops
from nasjax.strategies import reinforce

SEARCH_ARCH_MODES = ('second_order', 'first_order', 'finite_difference',
                     'weights_only')
SECOND_ORDER_IMPLS = ('hvp', 'unrolled')
NETWORK_KINDS = ('cifar', 'imagenet', 'enas', 'nb201')
SCHEDULES = ('cosine', 'exponential', 'sgdr')
DROP_PATH_RAMPS = ('epoch', 'step')


def _flat_keys(d: dict, prefix: str = '') -> list[str]:
  out = []
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out += _flat_keys(v, f'{prefix}{k}.')
    else:
      out.append(f'{prefix}{k}')
  return out


@functools.cache
def _known_fields(family: str) -> frozenset:
  """Every field of every variant of `nasjax.configs.<family>`."""
  module = importlib.import_module(f'nasjax.configs.{family}')
  return frozenset(k for v in module.VARIANTS
                   for k in _flat_keys(module.get_config(v).to_dict()))


def _suggest(key: str, known) -> list[str]:
  """Known fields close to `key`: siblings first (a leaf it abbreviates, as
  lr for learning_rate, or one spelt alike), then any field spelt alike or
  with the same leaf."""
  parent, _, leaf = key.rpartition('.')
  join = lambda p, l: f'{p}.{l}' if p else l
  siblings = [k.rpartition('.')[2] for k in known
              if k.rpartition('.')[0] == parent]
  abbrev = [s for s in siblings if ''.join(w[0] for w in s.split('_')) == leaf
            or (len(leaf) > 2 and s.startswith(leaf))]
  close = abbrev or difflib.get_close_matches(leaf, siblings, 2, 0.6)
  if close:
    return [join(parent, c) for c in sorted(close)[:3]]
  return (difflib.get_close_matches(key, known, 2, 0.75) or
          sorted(k for k in known if k.rpartition('.')[2] == leaf)[:3])


def check_known_fields(config, family: str, prefix: str = 'config') -> None:
  """Refuses a field that no preset of `family` (a `nasjax.configs` module:
  'darts_search', 'enas_search', ...) has: a misspelt field set from Python
  would otherwise be ignored without a word (the binaries' flags refuse
  them already). The message names the closest known fields."""
  known = _known_fields(family)
  keys = _flat_keys(config.to_dict())
  unknown = [k for k in keys if k not in known]
  if not unknown:
    return
  if 2 * len(unknown) > len(keys):
    raise errors.ConfigError(
        f'{prefix} is not a {family} config: {len(unknown)} of its '
        f'{len(keys)} fields are not fields of one (e.g. {unknown[:3]}). '
        f'Pass a preset of nasjax/configs/{family}.py (the binaries: '
        f'--config=experiments/configs/{family}.py:<variant>).')
  k = unknown[0]
  close = _suggest(k, known)
  hint = (' Did you mean ' + ' or '.join(f'{prefix}.{c}' for c in close) +
          '?' if close else '')
  more = (f' ({len(unknown)} unknown fields: {unknown})' if len(unknown) > 1
          else '')
  raise errors.ConfigError(
      f'{prefix}.{k} is not a field of a {family} config{more}.{hint}')


def check_family(config, families: tuple[str, ...]) -> str:
  """The family (a `nasjax.configs` module name) of `families` that
  `config` is a config of, the one with fewest unknown fields; a config of
  none of them (e.g. a search config given to the selection binary) is a
  `ConfigError` naming the config files that fit."""
  keys = _flat_keys(config.to_dict())
  misses = {f: sum(k not in _known_fields(f) for k in keys) for f in families}
  best = min(families, key=misses.get)
  if 2 * misses[best] > len(keys):
    files = ' or '.join(f'experiments/configs/{f}.py' for f in families)
    raise errors.ConfigError(
        f'--config is not a config of this binary: it takes {files} (with '
        f':<variant>); {misses[best]} of the given config\'s {len(keys)} '
        'fields are not fields of one.')
  return best


def _check_run(f: errors.Fields, devices: int | None, config) -> None:
  """The fields every run config shares (nasjax/configs/common.py)."""
  f.at_least(0, 'seed', 'num_devices', 'cpu_devices', 'max_steps')
  f.at_least(1, 'batch_size', 'epochs', 'log_every_steps',
             'checkpoint_every_steps', 'keep_checkpoints')
  f.one_of('depthwise_impl', ('auto',) + layers.DEPTHWISE_IMPLS)
  if devices is not None:
    f.divisible('batch_size', devices)
  f.get('data.name')
  f.check(len(tuple(f.get('data.image_shape'))) == 3, 'data.image_shape',
          f'expected [H, W, C], got {f.get("data.image_shape")!r}.')
  f.at_least(0, 'data.crop_padding')
  f.positive('optimizer.learning_rate')
  decay = tuple(f'optimizer.{k}' for k in ('weight_decay', 'l2')
                if k in config.optimizer)
  clip_eps = tuple(k for k in ('optimizer.grad_clip_eps',)
                   if 'grad_clip_eps' in config.optimizer)
  f.at_least(0, 'optimizer.learning_rate_min', *decay, 'optimizer.grad_clip',
             *clip_eps, integer=False)
  if len(decay) == 2:
    f.check(not (f.get('optimizer.l2') and f.get('optimizer.weight_decay')),
            'optimizer.l2', 'use l2 (ENAS) or weight_decay (DARTS), not both: '
            'set the other to 0.')
  f.half_open('optimizer.momentum', 0, 1)
  f.at_least(1, 'model.channels')
  # ENAS's final macro network takes its layers from the arc (0).
  if 'cells_per_stage' not in config.model:  # One-shot spaces: their own.
    f.at_least(0 if config.model.get('kind') == 'enas' else 1, 'model.layers')


def _check_collapse_options(f: errors.Fields, learns_alpha: bool,
                            every_op: bool) -> None:
  """The `hessian` and `beta_decay` sections (`configs.common`):
  `learns_alpha`, the strategy learns alpha by its gradient (DARTS, GDAS);
  `every_op`, through every op's weight (DARTS: a Hessian in alpha)."""
  # pylint: disable-next=g-import-not-at-top
  from nasjax import hessian
  f.at_least(0, 'hessian.every_epochs')
  f.one_of('hessian.objective', hessian.OBJECTIVES)
  f.at_least(1, 'hessian.iterations', 'hessian.k')
  f.at_least(0, 'hessian.start_epoch')
  f.open_interval('hessian.ratio', 0, 1)
  window = f.get('hessian.window')
  f.check(isinstance(window, int) and window >= 1 and window % 2 == 1,
          'hessian.window', f'must be an odd number of epochs (the window is '
          f'centred), got {window!r}.')
  f.at_least(0, 'beta_decay.per_epoch', integer=False)
  f.check(not f.get('beta_decay.per_epoch') or learns_alpha,
          'beta_decay.per_epoch', 'beta-DARTS regularises alpha learnt by '
          'its gradient (DARTS, GDAS); this strategy learns none.')
  on = f.get('hessian.every_epochs') > 0
  f.check(not on or every_op, 'hessian.every_epochs',
          'the Hessian monitor needs a strategy that learns alpha by its '
          'gradient through every op (DARTS), not one that samples cells.')
  f.check(not f.get('hessian.early_stop') or f.get('hessian.every_epochs')
          == 1, 'hessian.early_stop', 'needs hessian.every_epochs = 1 (the '
          'rule reads one eigenvalue per epoch).')


def check_search_config(config, devices: int | None = None,
                        prefix: str = 'config') -> None:
  """A darts_search config (nasjax/configs/darts_search.py)."""
  check_known_fields(config, 'darts_search', prefix)
  f = errors.Fields(config, prefix)
  _check_run(f, devices, config)
  f.check(f.get('optimizer.learning_rate_min') <=
          f.get('optimizer.learning_rate'), 'optimizer.learning_rate_min',
          'must not exceed optimizer.learning_rate.')
  f.open_interval('data.train_portion', 0, 1)
  f.at_least(1, 'model.stem_multiplier')
  f.at_least(1, 'search_space.steps')
  primitives = tuple(f.get('search_space.primitives'))
  f.check(len(primitives) >= 2, 'search_space.primitives',
          f'needs at least two ops, got {primitives!r}.')
  for p in primitives:
    f.check(p in ops.OPS, 'search_space.primitives',
            f'unknown op {p!r}; valid ops: {sorted(ops.OPS)}.')
  f.check(len(set(primitives)) == len(primitives), 'search_space.primitives',
          f'duplicate ops in {primitives!r}.')
  f.one_of('search.arch_mode', SEARCH_ARCH_MODES)
  f.one_of('search.second_order_impl', SECOND_ORDER_IMPLS)
  f.positive('search.fd_radius')
  f.at_least(1, 'search.compile_workers')
  f.check(not (f.get('search.staged') and
               f.get('search.arch_mode') == 'second_order' and
               f.get('search.second_order_impl') != 'hvp'),
          'search.second_order_impl',
          f'{f.get("search.second_order_impl")!r} needs search.staged=False '
          "(the staged step is the 'hvp' form).")
  f.positive('arch_optimizer.learning_rate')
  f.half_open('arch_optimizer.b1', 0, 1)
  f.half_open('arch_optimizer.b2', 0, 1)
  f.at_least(0, 'arch_optimizer.weight_decay', integer=False)
  learns = f.get('search.arch_mode') != 'weights_only'
  _check_collapse_options(f, learns, learns)


def check_one_shot_config(config, devices: int | None = None,
                          prefix: str = 'config') -> None:
  """A one_shot_search config (nasjax/configs/one_shot_search.py): a space
  and a strategy."""
  # pylint: disable-next=g-import-not-at-top
  from nasjax.configs import one_shot_search
  check_known_fields(config, 'one_shot_search', prefix)
  f = errors.Fields(config, prefix)
  _check_run(f, devices, config)
  f.check(f.get('optimizer.learning_rate_min') <=
          f.get('optimizer.learning_rate'), 'optimizer.learning_rate_min',
          'must not exceed optimizer.learning_rate.')
  f.one_of('space', one_shot_search.SPACES)
  f.one_of('strategy.name', ('darts', 'gdas', 'random_sampling', 'enas'))
  name, space = f.get('strategy.name'), f.get('space')
  names = {one_shot_search.STRATEGIES[s][0]
           for s in one_shot_search.PAIRS[space]}
  f.check(name in names, 'strategy.name',
          f'the {space} space is searched by {sorted(names)} here, got '
          f'{name!r}.')
  if space != 'nb201':
    f.check(not f.get('table'), 'table',
            f'is a NAS-Bench-201 table; the {space} space has none.')
  if space == 'darts_cell':
    f.at_least(3, 'model.layers')
  modes = (('weights_only',) if name in ('random_sampling', 'enas') else
           ('first_order', 'second_order', 'finite_difference'))
  f.check(f.get('strategy.arch_mode') in modes, 'strategy.arch_mode',
          f'{name} takes {modes}, got {f.get("strategy.arch_mode")!r}.')
  f.positive('strategy.tau_min')
  f.check(f.get('strategy.tau_min') <= f.get('strategy.tau_max'),
          'strategy.tau_min', 'must not exceed strategy.tau_max.')
  f.at_least(1, 'strategy.controller.lstm_size',
             'strategy.controller.train_steps',
             'strategy.controller.num_aggregate')
  f.positive('strategy.controller.learning_rate')
  f.at_least(0, 'strategy.controller.temperature',
             'strategy.controller.tanh_constant',
             'strategy.controller.entropy_weight', integer=False)
  f.half_open('strategy.controller.b1', 0, 1)
  f.half_open('strategy.controller.baseline_decay', 0, 1)
  f.positive('strategy.controller.eps')
  f.one_of('strategy.controller.adam_form', ('tf1', 'optax'))
  f.open_interval('data.train_portion', 0, 1)
  f.at_least(1, 'model.channels', 'model.cells_per_stage',
             'derive.num_samples', 'derive.batches')
  f.one_of('model.unselected_weights', ('reference', 'drop', 'every_op'))
  f.positive('arch_optimizer.learning_rate')
  f.half_open('arch_optimizer.b1', 0, 1)
  f.half_open('arch_optimizer.b2', 0, 1)
  f.at_least(0, 'arch_optimizer.weight_decay', integer=False)
  _check_collapse_options(f, name in ('darts', 'gdas'), name == 'darts')


def check_train_config(config, devices: int | None = None,
                       prefix: str = 'config') -> None:
  """A darts_train config (nasjax/configs/darts_train.py)."""
  check_known_fields(config, 'darts_train', prefix)
  f = errors.Fields(config, prefix)
  _check_run(f, devices, config)
  f.get('genotype')
  f.at_least(1, 'eval_batch_size', 'eval_every_epochs')
  f.at_least(0, 'data.cutout_length')
  f.one_of('model.kind', NETWORK_KINDS)
  f.one_of('optimizer.schedule', SCHEDULES)
  if f.get('optimizer.schedule') in ('cosine', 'sgdr'):
    f.check(f.get('optimizer.learning_rate_min') <=
            f.get('optimizer.learning_rate'), 'optimizer.learning_rate_min',
            'must not exceed optimizer.learning_rate.')
    if f.get('optimizer.schedule') == 'sgdr':
      f.at_least(1, 'optimizer.t0', 'optimizer.t_mul')
  else:
    gamma = f.get('optimizer.gamma')
    f.check(isinstance(gamma, (int, float)) and 0 < gamma <= 1,
            'optimizer.gamma', f'must be in (0, 1], got {gamma!r}.')
  f.at_least(0, 'train.aux_weight', integer=False)
  f.half_open('train.drop_path_prob', 0, 1)
  f.one_of('train.drop_path_ramp', DROP_PATH_RAMPS)
  f.half_open('train.label_smoothing', 0, 1)
  f.check(0 < f.get('model.keep_prob') <= 1, 'model.keep_prob',
          f'must be in (0, 1], got {f.get("model.keep_prob")!r}.')
  if f.get('model.kind') == 'enas':
    f.check(f.get('model.channels') % 2 == 0, 'model.channels',
            'must be even (factorised reductions halve it).')
  if 'workers' in config.data:  # A streaming dataset (ImageNet).
    f.at_least(0, 'data.workers')
    f.at_least(1, 'data.prefetch')


ENAS_SPACES = ('micro', 'macro')
SKIP_PENALTY_FORMS = ('sampled', 'reference')


def check_enas_config(config, devices: int | None = None,
                      prefix: str = 'config') -> None:
  """An enas_search config (nasjax/configs/enas_search.py)."""
  check_known_fields(config, 'enas_search', prefix)
  f = errors.Fields(config, prefix)
  _check_run(f, devices, config)
  f.one_of('space', ENAS_SPACES)
  f.check(f.get('optimizer.learning_rate_min') <=
          f.get('optimizer.learning_rate'), 'optimizer.learning_rate_min',
          'must not exceed optimizer.learning_rate.')
  f.at_least(1, 'optimizer.t0', 'optimizer.t_mul', 'data.num_valid',
             'model.nodes', 'controller.lstm_size', 'controller.train_steps',
             'controller.num_aggregate', 'derive.num_samples',
             'derive.num_batches', 'derive.report_samples')
  f.at_least(0, 'steps_per_epoch')
  f.check(f.get('model.channels') % 2 == 0, 'model.channels',
          'must be even (factorised reductions halve it).')
  f.at_least(0, 'model.aux_weight', 'controller.temperature',
             'controller.tanh_constant', 'controller.entropy_weight',
             'controller.skip_weight', integer=False)
  f.check(0 < f.get('model.keep_prob') <= 1, 'model.keep_prob',
          f'must be in (0, 1], got {f.get("model.keep_prob")!r}.')
  f.check(0 < f.get('model.drop_path_keep') <= 1, 'model.drop_path_keep',
          f'must be in (0, 1], got {f.get("model.drop_path_keep")!r}.')
  f.positive('controller.learning_rate', 'controller.op_tanh_reduce')
  f.half_open('controller.baseline_decay', 0, 1)
  f.open_interval('controller.skip_target', 0, 1)
  f.one_of('controller.skip_penalty_form', SKIP_PENALTY_FORMS)
  f.one_of('controller.adam_form', reinforce.ADAM_FORMS)
  if f.get('space') == 'macro':
    f.at_least(3, 'model.layers')


SELECTION_METHODS = ('darts', 'enas', 'darts_rnn', 'enas_rnn')


def check_selection_config(config, search_devices: int | None = None,
                           train_devices: int | None = None) -> None:
  """A selection config: its search and training parts, and their link."""
  check_known_fields(config, 'selection')
  errors.Fields(config).one_of('method', SELECTION_METHODS)
  if config.method in ('darts_rnn', 'enas_rnn'):
    check = (check_rnn_search_config if config.method == 'darts_rnn' else
             check_enas_rnn_config)
    check(config.search, search_devices, 'config.search')
    check_train = check_lm_train_config
  else:
    check = (check_enas_config if config.method == 'enas' else
             check_search_config)
    check(config.search, search_devices, 'config.search')
    check_train = check_train_config
  check_train(config.candidate_train, train_devices, 'config.candidate_train')
  check_train(config.final_train, train_devices, 'config.final_train')
  f = errors.Fields(config)
  f.at_least(1, 'num_searches')
  f.at_least(0, 'num_random')
  f.at_least(0, 'random_seed')
  f.half_open('validation_fraction', 0, 1)
  f.check(config.num_searches + config.num_random >= 2, 'num_searches',
          'num_searches + num_random must be >= 2: there is nothing to '
          f'compare with {config.num_searches + config.num_random}.')
  f.check(isinstance(config.final, bool), 'final',
          f'must be True or False, got {config.final!r}.')
  stages = (config.search.data, config.candidate_train.data,
            config.final_train.data)
  f.check(len({(d.name, d.data_dir) for d in stages}) == 1, 'search.data',
          'every stage must read the same dataset (set --config.data_dir '
          'for all).')


RNN_ARCH_MODES = ('second_order', 'first_order', 'finite_difference')


def _check_language_model(f: errors.Fields, devices: int | None) -> None:
  """Fields the recurrent search and retraining configs share
  (`configs.common.language_model`) and their weight optimiser's."""
  f.at_least(0, 'seed', 'num_devices', 'cpu_devices', 'max_steps')
  f.at_least(1, 'batch_size', 'epochs', 'log_every_steps',
             'checkpoint_every_steps', 'keep_checkpoints', 'eval_batch_size',
             'model.units')
  f.at_least(0, 'model.tar', 'optimizer.weight_decay', 'optimizer.grad_clip',
             integer=False)
  if 'grad_clip_eps' in f.get('optimizer'):
    f.at_least(0, 'optimizer.grad_clip_eps', integer=False)
  f.positive('optimizer.learning_rate')
  f.at_least(2, 'bptt')
  if devices is not None:
    f.divisible('batch_size', devices)
  f.one_of('data.name', ('ptb', 'synthetic'))
  for k in ('dropout', 'dropout_h', 'dropout_x', 'dropout_i', 'dropout_e'):
    f.half_open(f'model.{k}', 0, 1)


def check_rnn_search_config(config, devices: int | None = None,
                            prefix: str = 'config') -> None:
  """A darts_rnn_search config (nasjax/configs/darts_rnn_search.py)."""
  check_known_fields(config, 'darts_rnn_search', prefix)
  f = errors.Fields(config, prefix)
  _check_language_model(f, devices)
  f.at_least(1, 'search_space.steps')
  f.at_least(0, 'arch_optimizer.weight_decay', integer=False)
  f.positive('arch_optimizer.learning_rate')
  f.half_open('arch_optimizer.b1', 0, 1)
  f.half_open('arch_optimizer.b2', 0, 1)
  f.one_of('search.arch_mode', RNN_ARCH_MODES)
  f.one_of('search.second_order_impl', SECOND_ORDER_IMPLS)
  f.positive('search.fd_radius')
  prims = tuple(f.get('search_space.primitives'))
  f.check(bool(prims) and prims[0] == 'none' and set(prims) <= set(
      ('none', 'tanh', 'relu', 'sigmoid', 'identity')) and len(prims) > 1,
          'search_space.primitives', "must start with 'none' and name "
          'activations among tanh, relu, sigmoid, identity.')


def check_enas_rnn_config(config, devices: int | None = None,
                          prefix: str = 'config') -> None:
  """An enas_rnn_search config (nasjax/configs/enas_rnn_search.py)."""
  check_known_fields(config, 'enas_rnn_search', prefix)
  f = errors.Fields(config, prefix)
  _check_language_model(f, devices)
  f.at_least(1, 'model.nodes', 'controller.lstm_size',
             'controller.train_steps', 'controller.num_aggregate',
             'derive.num_samples', 'derive.num_windows',
             'derive.report_samples')
  f.one_of('space', ('recurrent',))
  f.one_of('model.output', ('loose_ends', 'all'))
  f.at_least(0, 'controller.temperature', 'controller.tanh_constant',
             'controller.entropy_weight', integer=False)
  f.positive('controller.learning_rate', 'controller.eps',
             'controller.reward_constant')
  f.half_open('controller.b1', 0, 1)
  f.half_open('controller.baseline_decay', 0, 1)
  f.one_of('controller.adam_form', reinforce.ADAM_FORMS)


def check_lm_train_config(config, devices: int | None = None,
                          prefix: str = 'config') -> None:
  """An lm_train config (nasjax/configs/lm_train.py)."""
  check_known_fields(config, 'lm_train', prefix)
  f = errors.Fields(config, prefix)
  _check_language_model(f, devices)
  f.at_least(0, 'optimizer.nonmono', 'optimizer.average_from_epoch',
             'max_seq_len_delta')
  f.at_least(1, 'test_batch_size', 'length_bucket')
  f.check(bool(str(f.get('genotype')).strip()), 'genotype',
          'name a recurrent genotype (e.g. DARTS_V2_RNN) or a file.')
