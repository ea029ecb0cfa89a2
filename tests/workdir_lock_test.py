"""The workdir lock: one run per workdir, across real processes."""

import io
import logging
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from nasjax import errors
from nasjax import loop
from tests import helpers

# A second process that takes the lock, says so, and waits.
_HOLDER = textwrap.dedent('''
    import sys
    from nasjax import loop
    loop.prepare_workdir(sys.argv[1])
    print('locked', flush=True)
    sys.stdin.read()
''')


def _holder(workdir):
  p = subprocess.Popen(
      [sys.executable, '-c', _HOLDER, str(workdir)], stdin=subprocess.PIPE,
      stdout=subprocess.PIPE, text=True,
      env=dict(os.environ, PYTHONPATH=helpers.ROOT, JAX_PLATFORMS='cpu'))
  assert p.stdout.readline().strip() == 'locked'
  return p


def test_a_held_workdir_is_refused_naming_its_owner_then_taken_over(
    tmp_path, caplog):
  p = _holder(tmp_path)
  try:
    with pytest.raises(errors.UserError, match=f'in use by another run '
                       rf'\(host \S+ pid {p.pid},'):
      loop.prepare_workdir(str(tmp_path))
    # A binary started on it exits 2 with one line and writes nothing.
    r = helpers.run_binary('darts_search', 'tiny', f'--workdir={tmp_path}')
    assert r.returncode == 2, r.stderr[-2000:]
    assert f'pid {p.pid}' in r.stderr.strip().splitlines()[-1]
    assert 'Traceback' not in r.stderr
    assert sorted(os.listdir(tmp_path)) == [loop.LOCK_FILE]
  finally:
    p.send_signal(signal.SIGKILL)
    p.wait()
  # Its owner killed, the lock is free; the file it left is reported.
  loop.lock_workdir(str(tmp_path))
  try:
    assert f'pid {p.pid}' in caplog.text
    with open(tmp_path / loop.LOCK_FILE) as f:
      assert f'pid {os.getpid()},' in f.read()
  finally:
    loop.unlock_workdir(str(tmp_path))


def test_a_run_releases_its_lock_when_it_returns_or_raises(tmp_path):
  @loop.releases_workdirs
  def run(fail):
    loop.prepare_workdir(str(tmp_path / 'a'))
    loop.prepare_workdir(str(tmp_path / 'a' / 'stage'))  # Nested: selection.
    loop.prepare_workdir(str(tmp_path / 'a'))  # Re-entry: no deadlock.
    if fail:
      raise RuntimeError('stop')

  for fail in (False, True):
    try:
      run(fail)
    except RuntimeError:
      assert fail
    for d in (tmp_path / 'a', tmp_path / 'a' / 'stage'):
      p = _holder(d)  # Another process can take it.
      p.kill()
      p.wait()
      assert (d / loop.LOCK_FILE).read_text() != ''  # Killed: file names it.
      loop.unlock_workdir(str(d))  # (Not ours: a no-op.)


class _SignallingHandler(logging.StreamHandler):
  """Sends this process SIGTERM while a record is being written: inside
  `StreamHandler.emit`, which hands any `Exception` to `handleError`."""

  def flush(self):
    os.kill(os.getpid(), signal.SIGTERM)
    super().flush()


def test_sigterm_while_a_line_is_logged_stops_the_run_function():
  """The exception SIGTERM raises outside the step loop passes through code
  that catches `Exception` (here a logging handler, as in the final
  derivation's report line) instead of being printed and lost; a signal
  whose exception was lost anyway stops the run at its next
  `check_terminated`."""
  log = logging.getLogger('nasjax.test_sigterm')
  handler = _SignallingHandler(io.StringIO())
  log.addHandler(handler)
  reached = []

  @loop.releases_workdirs
  def run():
    log.warning('Deriving: ...')
    reached.append('after the log line')

  try:
    with pytest.raises(loop.Terminated):
      run()
  finally:
    log.removeHandler(handler)
  assert not reached

  @loop.releases_workdirs
  def lost():
    try:
      os.kill(os.getpid(), signal.SIGTERM)
    except BaseException:  # pylint: disable=broad-except
      pass  # What a garbage-collection callback does with it.
    loop.check_terminated()
    reached.append('after check_terminated')

  with pytest.raises(loop.Terminated):
    lost()
  assert not reached
  loop.check_terminated()  # Outside a run function: nothing pending.
