"""Shipped configs: valid on 1, 2, 4 and 8 devices; bad values refused.

Shapes and fields only (no training), except one evaluation on 8 devices
with an eval batch that does not divide across them.
"""

import re

import jax
import numpy as np
import pytest

from nasjax import data
from nasjax.configs import darts_rnn_search
from nasjax.configs import darts_search
from nasjax.configs import darts_train
from nasjax.configs import enas_rnn_search
from nasjax.configs import enas_search
from nasjax.configs import lm_train
from nasjax.configs import selection
from nasjax import config_checks
from nasjax import errors
from nasjax import parallel
from nasjax.final import train
from tests import helpers


@pytest.mark.parametrize('devices', [1, 2, 4, 8])
def test_every_shipped_config_fits_1_2_4_8_devices(devices):
  for variant in darts_search.VARIANTS:
    config_checks.check_search_config(darts_search.get_config(variant),
                                      devices)
  for variant in darts_train.VARIANTS:
    config_checks.check_train_config(darts_train.get_config(variant), devices)
  for variant in selection.VARIANTS:
    config_checks.check_selection_config(selection.get_config(variant),
                                         devices, devices)
  for variant in enas_search.VARIANTS:
    config_checks.check_enas_config(enas_search.get_config(variant), devices)
  for variant in enas_rnn_search.VARIANTS:
    config_checks.check_enas_rnn_config(enas_rnn_search.get_config(variant),
                                        devices)
  for variant in darts_rnn_search.VARIANTS:
    config_checks.check_rnn_search_config(
        darts_rnn_search.get_config(variant), devices)
  for variant in lm_train.VARIANTS:
    config_checks.check_lm_train_config(lm_train.get_config(variant), devices)


def test_no_shipped_config_points_outside_the_repository():
  configs = ([darts_search.get_config(v) for v in darts_search.VARIANTS] +
             [darts_train.get_config(v) for v in darts_train.VARIANTS] +
             [enas_search.get_config(v) for v in enas_search.VARIANTS] +
             [darts_rnn_search.get_config(v)
              for v in darts_rnn_search.VARIANTS] +
             [enas_rnn_search.get_config(v) for v in enas_rnn_search.VARIANTS] +
             [lm_train.get_config(v) for v in lm_train.VARIANTS])
  for c in configs:
    assert c.data.data_dir == '', c.data.data_dir
  for v in selection.VARIANTS:
    assert selection.get_config(v).data_dir == ''


def test_selection_data_dir_sets_every_stage():
  c = selection.get_config('darts_cifar10_subset')
  c.data_dir = '/data/cifar'
  assert (c.search.data.data_dir == c.candidate_train.data.data_dir ==
          c.final_train.data.data_dir == '/data/cifar')


@pytest.mark.parametrize('field,value,message', [
    ('epochs', 0, 'config.epochs must be >= 1, got 0'),
    ('optimizer.learning_rate', 0.0, 'must be > 0'),
    ('optimizer.learning_rate', -1.0, 'must be > 0'),
    ('data.train_portion', 1.0, 'must be in (0, 1)'),
    ('data.train_portion', 0.0, 'must be in (0, 1)'),
    ('batch_size', 0, 'config.batch_size must be >= 1'),
    ('batch_size', 12, 'divisible by the number of devices (8)'),
    ('optimizer.momentum', 1.0, 'must be in [0, 1)'),
    ('arch_optimizer.learning_rate', 0.0, 'must be > 0'),
    ('search.arch_mode', 'third_order', 'must be one of'),
    ('search.fd_radius', 0.0, 'must be > 0'),
    ('search_space.primitives', ('none', 'sep_conv_9x9'), 'unknown op'),
    ('depthwise_impl', 'fft', 'must be one of'),
])
def test_bad_search_values_name_the_field(field, value, message):
  c = helpers.override(darts_search.get_config('tiny'), **{field: value})
  with pytest.raises(errors.ConfigError, match=message.replace(
      '(', '\\(').replace(')', '\\)').replace('[', '\\[')):
    config_checks.check_search_config(c, 8)


@pytest.mark.parametrize('field,value', [
    ('eval_batch_size', 0), ('train.drop_path_prob', 1.0),
    ('train.label_smoothing', -0.1), ('model.kind', 'resnet'),
    ('optimizer.schedule', 'step'), ('eval_every_epochs', 0)])
def test_bad_train_values_name_the_field(field, value):
  c = helpers.override(darts_train.get_config('tiny'), **{field: value})
  with pytest.raises(errors.ConfigError, match=f'config.{field}'):
    config_checks.check_train_config(c, 1)


@pytest.mark.parametrize('field,value', [
    ('optimizer.weight_decay', 3e-4), ('train.drop_path_ramp', 'cell'),
    ('optimizer.t0', 0), ('model.keep_prob', 1.5), ('model.channels', 5),
    ('model.layers', -1)])
def test_bad_enas_train_values_name_the_field(field, value):
  """ENAS retraining: L2 and weight decay together, the ramps, the restart
  period, dropout, odd channels (factorised reductions)."""
  c = helpers.override(darts_train.get_config('enas_tiny'), **{field: value})
  field = 'optimizer.l2' if field == 'optimizer.weight_decay' else field
  with pytest.raises(errors.ConfigError, match=f'config.{field}'):
    config_checks.check_train_config(c, 1)


@pytest.mark.parametrize('field,value', [
    ('space', 'meso'), ('model.channels', 5), ('model.keep_prob', 0.0),
    ('model.drop_path_keep', 1.5), ('controller.baseline_decay', 1.0),
    ('controller.skip_penalty_form', 'paper'), ('controller.train_steps', 0),
    ('optimizer.t_mul', 0), ('derive.num_samples', 0),
    ('data.num_valid', 0)])
def test_bad_enas_values_name_the_field(field, value):
  c = helpers.override(enas_search.get_config('micro_tiny'), **{field: value})
  with pytest.raises(errors.ConfigError, match=f'config.{field}'):
    config_checks.check_enas_config(c, 1)


def test_evaluation_with_an_indivisible_eval_batch_on_8_devices():
  """eval_batch_size=500 on 8 devices: rounded up to 504, padded and
  masked; every test example counted once, as on 1 device."""
  config = darts_train.get_config('tiny')
  config.eval_batch_size = 500
  ds = data.get_dataset('digits')
  model, tx, prep, _, _ = train.build(config, ds, helpers.TINY_GENOTYPE, 10)
  results = []
  for n in (1, 8):
    mesh = parallel.make_mesh(n)
    state = train.init_state(model, tx, ds.image_shape, 0, mesh)
    eval_fn = jax.jit(
        lambda st, b: train.step_lib.eval_step(st, b, model=model,
                                               preprocess=prep),
        in_shardings=(parallel.replicated(mesh),
                      parallel.batch_sharding(mesh)),
        out_shardings=parallel.replicated(mesh))
    batch = parallel.padded_batch(config.eval_batch_size, mesh)
    assert batch == (500 if n == 1 else 504)
    results.append(train.evaluate(eval_fn, state, ds.test, batch, mesh))
  assert results[0]['examples'] == results[1]['examples'] == len(ds.test)
  np.testing.assert_allclose(results[0]['accuracy'], results[1]['accuracy'])
  np.testing.assert_allclose(results[0]['loss'], results[1]['loss'],
                             rtol=1e-5)


_CHECKS = {
    darts_search: config_checks.check_search_config,
    darts_train: config_checks.check_train_config,
    enas_search: config_checks.check_enas_config,
    darts_rnn_search: config_checks.check_rnn_search_config,
    enas_rnn_search: config_checks.check_enas_rnn_config,
    lm_train: config_checks.check_lm_train_config,
    selection: config_checks.check_selection_config,
}


@pytest.mark.parametrize('module', list(_CHECKS), ids=lambda m: m.__name__)
def test_a_misspelt_field_set_from_python_is_refused_with_a_suggestion(
    module):
  """Presets are open ConfigDicts, so `cfg.epoch = 7` adds a field that
  nothing reads. Every run's config check refuses it, naming the field and
  the one meant; every shipped preset passes (the check found the tiny
  selection presets setting search.arch_mode, which no code reads, where
  search.search.arch_mode was meant)."""
  for variant in module.VARIANTS:
    _CHECKS[module](module.get_config(variant))
  config = module.get_config(module.VARIANTS[-1])
  config.epoch = 7
  hint = '' if module is selection else ' Did you mean config.epochs?'
  with pytest.raises(errors.ConfigError, match=re.escape(
      f'config.epoch is not a field of a {module.__name__.split(".")[-1]} '
      f'config.{hint}')):
    _CHECKS[module](config)


def test_misspelt_nested_fields_and_presets_from_python():
  config = darts_search.get_config('tiny')
  config.optimizer.lr = 0.5
  with pytest.raises(errors.ConfigError, match=r'config\.optimizer\.lr is not '
                     r'.* Did you mean config\.optimizer\.learning_rate'):
    config_checks.check_search_config(config)
  stage = selection.get_config('svr_tiny')
  stage.search.model.chanels = 4
  with pytest.raises(errors.ConfigError, match=r'config\.search\.model\.'
                     r'chanels .* Did you mean config\.search\.model\.channels'):
    config_checks.check_selection_config(stage)
  import nasjax  # pylint: disable=g-import-not-at-top
  with pytest.raises(errors.UserError, match="Unknown config variant 'digitz'"):
    nasjax.configs.search('digitz')
