"""The binaries as a user meets them: bad input, interruption, exit status.

Every user error is one line on stderr ('Error: ...', naming the field,
path or name), exit status 2 and no traceback, and nothing is written;
--traceback shows the traceback. SIGTERM saves, exits 143 and writes no
final files. Each case runs the real binary in a subprocess; the errors
come before anything is compiled.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nasjax import genotype as G
from nasjax.search_spaces import enas as enas_space
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEARCH, TRAIN, SELECT = 'darts_search', 'darts_train', 'selection'
ENAS = 'enas_search'


def _run(binary, variant, args, workdir, timeout=300):
  return helpers.run_binary(binary, variant, f'--workdir={workdir}', *args,
                            timeout=timeout)


def _assert_one_line_error(out, prefix, message):
  """Exit status 2, no traceback, and the last stderr line is the error."""
  assert out.returncode == 2, out.stderr[-3000:]
  assert 'Traceback' not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith(prefix) and message in last, out.stderr[-3000:]


def _corrupt_cifar(path):
  path.mkdir()
  (path / 'data_batch_1').write_bytes(b'not a pickle')
  return path


def _recurrent_arc():
  """(space, arc) of an ENAS recurrent search's result (its arc.json)."""
  space = enas_space.RecurrentSpace(num_nodes=3)
  return space, space.random_arc(np.random.default_rng(0))


def _genotype_with_unknown_op(path):
  d = G.to_dict(helpers.TINY_GENOTYPE)
  d['normal'][0][0] = 'sep_conv_9x9'
  path.write_text(json.dumps(d))
  return path


# (binary, variant, args (may use {tmp}), expected message) per user error.
CASES = {
    'epochs_zero': (SEARCH, 'tiny', ['--config.epochs=0'],
                    'config.epochs must be >= 1, got 0'),
    'negative_lr': (SEARCH, 'tiny', ['--config.optimizer.learning_rate=-0.1'],
                    'config.optimizer.learning_rate must be > 0, got -0.1'),
    'train_portion': (SEARCH, 'tiny', ['--config.data.train_portion=1.5'],
                      'config.data.train_portion must be in (0, 1), got 1.5'),
    'unknown_arch_mode': (SEARCH, 'tiny',
                          ['--config.search.arch_mode=third_order'],
                          "config.search.arch_mode must be one of"),
    'batch_larger_than_split': (SEARCH, 'tiny', ['--config.batch_size=4000'],
                                'Global batch 4000 (config.batch_size) is '
                                "larger than the weights' part of the "
                                'training split (data.train_portion)'),
    'enas_batch_larger_than_holdout': (
        ENAS, 'micro_tiny', ['--config.batch_size=100'],
        'Global batch 100 (config.batch_size) is larger than the '
        "controller's hold-out split (data.num_valid) (64 examples)"),
    'indivisible_batch': (SEARCH, 'tiny', ['--config.cpu_devices=2',
                                           '--config.batch_size=7'],
                          'config.batch_size=7 must be divisible by the '
                          'number of devices (2)'),
    'missing_data_dir': (SEARCH, 'tiny', ['--config.data.name=cifar10'],
                         'set --config.data.data_dir='),
    'nonexistent_data': (SEARCH, 'tiny', ['--config.data.name=cifar10',
                                          '--config.data.data_dir={tmp}/nope'],
                         'CIFAR-10 directory {tmp}/nope does not exist'),
    'corrupt_data': (SEARCH, 'tiny', ['--config.data.name=cifar10',
                                      '--config.data.data_dir={corrupt}'],
                     'Corrupt CIFAR-10 batch file {corrupt}/data_batch_1'),
    'unwritable_workdir': (SEARCH, 'tiny', ['--workdir={tmp}/file/run'],
                           "Cannot write to the workdir '{tmp}/file/run'"),
    'unknown_genotype': (TRAIN, 'tiny', ['--config.genotype=DARTS_V9'],
                         "Unknown genotype 'DARTS_V9'"),
    'unknown_op': (TRAIN, 'tiny', ['--config.genotype={bad_genotype}'],
                   "unknown op 'sep_conv_9x9'"),
    'drop_path': (TRAIN, 'tiny', ['--config.train.drop_path_prob=1.5'],
                  'config.train.drop_path_prob must be in [0, 1)'),
    'enas_preset_darts_genotype': (TRAIN, 'enas_tiny',
                                   ['--config.genotype=DARTS_V2'],
                                   'config.genotype is a DARTS genotype '
                                   'that is not an ENAS micro cell'),
    'selection_missing_data_dir': (SELECT, 'svr_cifar10_subset', [],
                                   'set --config.data_dir='),
    'enas_unknown_space': (ENAS, 'micro_tiny', ['--config.space=meso'],
                           'config.space must be one of'),
    'recurrent_genotype_to_cnn': (TRAIN, 'tiny',
                                  ['--config.genotype=DARTS_V2_RNN'],
                                  'config.genotype is a recurrent cell'),
    'recurrent_arc_to_enas_network': (TRAIN, 'enas_tiny',
                                      ['--config.genotype={rnn_arc}'],
                                      'config.genotype is a recurrent cell'),
    'cifar_batch_is_a_directory': (
        SEARCH, 'tiny', ['--config.data.name=cifar10',
                         '--config.data.data_dir={dir_batch}'],
        'Cannot read the CIFAR-10 batch file {dir_batch}/data_batch_1: Is a '
        'directory'),
    'selection_given_a_search_config': (
        SELECT, 'svr_tiny',
        [f'--config={ROOT}/experiments/configs/darts_search.py:tiny'],
        '--config is not a config of this binary: it takes '
        'experiments/configs/selection.py'),
    'search_given_a_selection_config': (
        SEARCH, 'tiny',
        [f'--config={ROOT}/experiments/configs/selection.py:svr_tiny'],
        '--config is not a config of this binary'),
    'enas_holdout_too_large': (ENAS, 'micro_tiny',
                               ['--config.data.num_valid=5000'],
                               'data.num_valid=5000 must leave images'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_user_error_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
  binary, variant, args, message = CASES[case]
  fill = dict(tmp=tmp_path, corrupt=tmp_path / 'corrupt',
              bad_genotype=tmp_path / 'bad.json', dir_batch=tmp_path / 'dirs',
              rnn_arc=tmp_path / 'rnn_arc.json')
  _corrupt_cifar(tmp_path / 'corrupt')
  (tmp_path / 'dirs' / 'data_batch_1').mkdir(parents=True)
  enas_space.write_files(*_recurrent_arc(), str(tmp_path / 'rnn_arc'))
  _genotype_with_unknown_op(tmp_path / 'bad.json')
  (tmp_path / 'file').write_text('a file, not a directory')
  workdir = tmp_path / 'run'
  args = [a.format(**fill) for a in args]
  out = _run(binary, variant, args, workdir)
  _assert_one_line_error(out, 'Error: ', message.format(**fill))
  assert not workdir.exists()
  # Nothing ran, so nothing else was said (no INFO lines before it).
  assert len(out.stderr.strip().splitlines()) == 1, out.stderr[-3000:]


def test_traceback_flag_shows_the_traceback(tmp_path):
  out = _run(SEARCH, 'tiny', ['--config.epochs=0', '--traceback'], tmp_path)
  assert out.returncode == 1
  assert 'Traceback' in out.stderr and 'ConfigError' in out.stderr
  assert 'config.epochs must be >= 1' in out.stderr


@pytest.mark.parametrize('flag,message', [
    ('--config.epoch=3', 'unknown config field \'epoch\' Did you mean '
     '"epochs"'),
    ('--config.epochs=abc', '--config.epochs=abc: invalid literal'),
    ('--config={search}:huge', "Unknown config variant 'huge'"),
])
def test_bad_flag_is_one_line_exit_2(flag, message, tmp_path):
  search = os.path.join(ROOT, 'experiments', 'configs', 'darts_search.py')
  out = _run(SEARCH, 'tiny', [flag.format(search=search)], tmp_path / 'run')
  _assert_one_line_error(out, 'Error: bad command-line flag: ', message)
  assert not (tmp_path / 'run').exists()


def _sigterm_after_step_2(proc, after: str = ' step 2/') -> str:
  """Sends SIGTERM once `proc` logs `after` (or after 10 min); its whole
  stderr once it has exited."""
  lines = []
  deadline = time.time() + 600
  try:
    for line in proc.stderr:  # Progress lines: 'step 1/...'.
      lines.append(line)
      if after in line or time.time() > deadline:
        break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=300)
  finally:
    proc.kill()
  return ''.join(lines) + rest


def test_sigterm_saves_exits_143_and_writes_no_final_files(tmp_path):
  config = os.path.join(ROOT, 'experiments', 'configs', 'darts_search.py')
  env = dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT)
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'experiments', 'darts_search.py'),
       f'--config={config}:tiny', f'--workdir={tmp_path}',
       '--config.search.arch_mode=first_order', '--config.max_steps=0',
       '--config.epochs=50', '--config.checkpoint_every_steps=100000'],
      stderr=subprocess.PIPE, text=True, env=env)
  stderr = _sigterm_after_step_2(proc)
  assert proc.returncode == 143, stderr[-3000:]
  assert 'Interrupted (SIGTERM)' in stderr
  assert 'Traceback' not in stderr
  saved = os.listdir(tmp_path / 'checkpoints')
  assert any(name.isdigit() and int(name) >= 2 for name in saved), saved
  for name in ('genotype.json', 'genotype.txt', 'results.json'):
    assert not (tmp_path / name).exists(), name


@pytest.mark.parametrize('config_file,variant', [
    ('enas_search.py', 'micro_tiny'), ('enas_search.py', 'macro_tiny'),
    ('enas_rnn_search.py', 'tiny')])
def test_enas_sigterm_exits_143_then_resumes_to_the_uninterrupted_result(
    config_file, variant, tmp_path):
  """The ENAS binary (micro, macro, recurrent) stopped by SIGTERM mid-run:
  exit 143, a checkpoint, no final files. The same run resumed (from
  Python, up to 2 steps past the checkpoint) ends with every array and the
  derived arc of an uninterrupted run of as many steps."""
  import chex  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import nasjax  # pylint: disable=g-import-not-at-top
  config_path = os.path.join(ROOT, 'experiments', 'configs', config_file)
  split = tmp_path / 'split'
  env = dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT)
  proc = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'experiments', 'enas_search.py'),
       f'--config={config_path}:{variant}', f'--workdir={split}',
       '--config.max_steps=0', '--config.epochs=50',
       '--config.checkpoint_every_steps=100000'],
      stderr=subprocess.PIPE, text=True, env=env)
  stderr = _sigterm_after_step_2(proc)
  assert proc.returncode == 143, stderr[-3000:]
  assert 'Interrupted (SIGTERM)' in stderr and 'Traceback' not in stderr
  saved = [int(n) for n in os.listdir(split / 'checkpoints') if n.isdigit()]
  assert saved and max(saved) >= 2, saved
  for name in ('arc.json', 'arc.txt', 'results.json'):
    assert not (split / name).exists(), name

  rnn = config_file == 'enas_rnn_search.py'
  config = (nasjax.configs.enas_rnn if rnn else nasjax.configs.enas)(variant)
  config.epochs, config.max_steps = 50, max(saved) + 2
  config.checkpoint_every_steps = 100000
  config.num_devices = 1  # As the binary (this process has 8 CPU devices).

  def run(workdir):
    if rnn:
      return nasjax.enas_rnn_search(config, workdir=str(workdir),
                                    progress='none')
    return nasjax.enas_search('digits', config, workdir=str(workdir),
                              progress='none')

  resumed, straight = run(split), run(tmp_path / 'straight')
  assert resumed.summary['start_step'] == max(saved)
  assert resumed.status == straight.status == 'completed'
  assert resumed.arc_string == straight.arc_string
  chex.assert_trees_all_equal(
      jax.device_get(resumed.state.checkpoint_items()),
      jax.device_get(straight.state.checkpoint_items()))
  assert (split / 'arc.json').exists()
  # Run again, the finished search is read back; nothing is rewritten.
  again = helpers.assert_rerun_changes_nothing(split, lambda: run(split))
  assert again.status == 'completed'
  assert again.arc_string == resumed.arc_string


def test_sigterm_in_the_final_derivation_exits_143_then_finishes(tmp_path):
  """SIGTERM while the ENAS binary derives (after its last step was saved):
  exit 143 with a message, no results file; the same command run again
  redoes the derivation and completes."""
  config = os.path.join(ROOT, 'experiments', 'configs', 'enas_search.py')
  args = [sys.executable, os.path.join(ROOT, 'experiments', 'enas_search.py'),
          f'--config={config}:micro_tiny', f'--workdir={tmp_path}',
          '--config.derive.num_samples=100000']
  env = dict(os.environ, XLA_FLAGS='', PYTHONPATH=ROOT)
  proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
  stderr = _sigterm_after_step_2(proc, after='Deriving: ')
  assert proc.returncode == 143, stderr[-3000:]
  assert 'Interrupted (SIGTERM) outside the training steps' in stderr
  assert 'Traceback' not in stderr
  assert not (tmp_path / 'results.json').exists()
  args[-1] = '--config.derive.num_samples=4'  # Resumable: not the result.
  again = subprocess.run(args, capture_output=True, text=True, env=env,
                         timeout=600, check=False)
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'is complete already' not in again.stderr
  results = json.loads((tmp_path / 'results.json').read_text())
  assert results['status'] == 'completed' and results['start_step'] == 4
  assert (tmp_path / 'arc.json').exists()
