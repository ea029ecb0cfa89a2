"""Process set-up (`nasjax.platform`) and progress reporting choices."""

import os

import jax
import pytest

from nasjax import platform
from nasjax import progress


def test_auto_depthwise_follows_the_platform():
  assert jax.default_backend() == 'cpu'
  assert platform.depthwise_impl('auto') == 'shift'
  assert platform.depthwise_impl('grouped') == 'grouped'  # Explicit wins.


def test_setup_after_jax_started_warns_and_keeps_flags_and_cache(monkeypatch):
  jax.devices()  # Backends are up, as in a notebook after the first cell.
  flags_before = os.environ.get('XLA_FLAGS')
  cache_before = jax.config.jax_compilation_cache_dir
  assert cache_before  # The tests' cache (conftest).
  with pytest.warns(UserWarning, match='already initialised'):
    platform.setup(cpu_devices=2)
  assert os.environ.get('XLA_FLAGS') == flags_before
  assert jax.config.jax_compilation_cache_dir == cache_before
  assert platform.is_setup()


def test_progress_mode_resolution(monkeypatch):
  class NotATerminal:
    def isatty(self):
      return False
  monkeypatch.setattr('sys.stderr', NotATerminal())
  assert progress.resolve('auto') == 'lines'
  assert progress.resolve('bar') == 'bar'
  with pytest.raises(ValueError, match='Unknown progress mode'):
    progress.resolve('loud')
