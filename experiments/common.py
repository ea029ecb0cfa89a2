"""What the binaries share: flags, set-up and exit status.

Each binary is `common.main(work, cpu_split, families)`: --config (a preset
of one of the config families the binary takes) and --workdir are parsed
here, the process is set up (`nasjax.platform.setup`: XLA:CPU options, the
CPU split the config asks for, the persistent XLA cache), then
`work(config, workdir)` runs and its outcome becomes the exit status:

  0    the run completed;
  2    bad input (`errors.UserError`: a config value, data, genotype,
       batch size, workdir): one line on stderr, no traceback (--traceback
       shows it); nothing was run;
  3    a non-finite loss or gradient stopped the run; the last good
       checkpoint, if any, is kept;
  130  interrupted by Ctrl-C, 143 by SIGTERM: a checkpoint was saved first,
       and re-running the same command resumes;
  1    anything else (a bug: the traceback is printed).
"""

import ast
import logging
import sys
from typing import Callable

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags

from nasjax import config_checks
from nasjax import errors
from nasjax import loop
from nasjax import platform

EXIT_USER_ERROR = 2
EXIT_NON_FINITE = 3
EXIT_CTRL_C = 130
EXIT_SIGTERM = 143

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file and variant: experiments/configs/FILE.py:ARG.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Output directory; re-running with it resumes.')
_TRACEBACK = flags.DEFINE_bool(
    'traceback', False, 'Print the traceback of input errors too (they are '
    'reported in one line by default).')


Config = ml_collections.ConfigDict


def device_count(num_devices: int) -> int:
  """The devices a run with config.num_devices = `num_devices` shards over."""
  return num_devices or jax.device_count()


def _exit(status: int, message: str) -> None:
  print(message, file=sys.stderr, flush=True)
  sys.exit(status)


def _parse_flags(argv):
  """absl's flag parsing, with bad flags and --config overrides (unknown
  fields, values of the wrong type, unknown variants) as user errors."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    if '--traceback' in argv:
      raise
    _exit(EXIT_USER_ERROR, f'Error: bad command-line flag: {_flag_error(e)}')


def _flag_error(e: Exception) -> str:
  """One line from what absl and ml_collections raise for a bad flag."""
  text = str(e)
  if 'Traceback' in text:  # A config file's get_config raised: keep its line.
    text = text.strip().splitlines()[-1]
  if isinstance(e, (AttributeError, KeyError)):
    try:  # ml_collections nests the repr of a KeyError's message.
      text = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      pass
    text = f'unknown config field {text}'
  return ' '.join(text.split())


def main(work: Callable[[Config, str], str],
         cpu_split: Callable[[Config], tuple[int, list[int]]],
         families: tuple[str, ...]) -> None:
  """Runs a binary: `work(config, workdir)` after the shared set-up.

  Args:
    work: the binary's job; returns the run's status, 'completed' or
      'interrupted' (`loop.Result.status`).
    cpu_split: config -> (cpu_devices, global batch sizes), see
      `nasjax.platform.split_cpu`.
    families: the config modules (`nasjax/configs/<family>.py`) whose
      presets the binary takes; another config is a one-line error.
  """
  flags.mark_flags_as_required(['config', 'workdir'])

  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    config = _CONFIG.value
    try:
      config_checks.check_family(config, families)
      cpu_devices, batch_sizes = cpu_split(config)
      platform.setup(cpu_devices=cpu_devices, batch_sizes=batch_sizes)
      # JAX's note that a CPU host has no TPU library is not news; the
      # devices are named once the run starts (the compile message).
      logging.getLogger('jax._src.xla_bridge').setLevel(
          logging.WARNING)
      status = work(config, _WORKDIR.value)
    except errors.UserError as e:
      if _TRACEBACK.value:
        raise
      _exit(EXIT_USER_ERROR, f'Error: {e}')
    except loop.NonFiniteError as e:
      if _TRACEBACK.value:
        raise
      _exit(EXIT_NON_FINITE, f'Stopped: {e}')
    except KeyboardInterrupt:
      _exit(EXIT_CTRL_C, 'Interrupted (Ctrl-C). Run the same command again '
            'to resume from the last checkpoint.')
    except loop.Terminated:
      _exit(EXIT_SIGTERM, 'Interrupted (SIGTERM) outside the training steps; '
            'what was saved is kept. Run the same command again to resume '
            'or to finish.')
    if status == 'interrupted':
      _exit(EXIT_SIGTERM, 'Interrupted (SIGTERM); a checkpoint was saved. '
            'Run the same command again to resume.')

  app.run(_main, flags_parser=_parse_flags)
