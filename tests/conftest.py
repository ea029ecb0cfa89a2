"""Test environment, set before anything imports JAX.

* 8 fake CPU devices, so the sharding tests can compare 8 devices with 1;
* the persistent compilation cache (XLA compiles slowly on 2 cores; identical
  steps compiled by several tests, or by a second run, are read back);
* most XLA optimisations off (`jax_disable_most_optimizations`): on 2 cores
  compiling dominates the suite and this halves it; the shapes are tiny, so
  the slower code does not matter. Set through the environment, so the
  binaries and workers the tests start as subprocesses inherit it. The
  binaries and benchmarks themselves compile fully optimised;
* the XLA:CPU options the binaries use (`nasjax.parallel.XLA_CPU_FLAGS`), so
  the tests run the code the binaries run (same compile time here: the tiny
  second-order search step compiles in 35 s either way), and the thread pool
  the binaries give several CPU devices ($NPROC, `size_cpu_thread_pool`);
* TensorFlow, if present, never sees a GPU;
* the process-wide depthwise impl, which runs set from their config, is
  restored after every test, so no test depends on the order of the files.
"""

import os

os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', 'true')

# pylint: disable=g-import-not-at-top
import jax  # Backends start at first use, after XLA_FLAGS is final.

from nasjax import parallel

parallel.add_xla_flags()
# XLA:CPU's thread pool with spare threads for the 8 devices, as the
# binaries size it when they split the CPU (nasjax.parallel).
parallel.size_cpu_thread_pool(8)

_CACHE = os.environ.get(
    'NASJAX_TEST_CACHE',
    os.path.join(os.path.dirname(os.path.dirname(__file__)), '.jax_cache'))
jax.config.update('jax_compilation_cache_dir', _CACHE)
os.environ.setdefault('NASJAX_XLA_CACHE', _CACHE)  # For binaries run by tests.
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)

# Real data for the tests that need it (a CIFAR-10 subset as python batch
# files under cifar10/cifar-10-batches-py): $NASJAX_TEST_DATA, else a
# shared/data folder beside the repository. Without it those tests skip,
# saying where the data was expected; under CI=true they fail instead, so CI
# never skips them silently.
TEST_DATA = os.environ.get('NASJAX_TEST_DATA') or os.path.normpath(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                 '..', 'shared', 'data'))
CIFAR_DIR = os.path.join(TEST_DATA, 'cifar10', 'cifar-10-batches-py')


def require_data(path: str) -> str:
  """`path` if it exists; else skip the test (fail it under CI=true)."""
  import pytest  # pylint: disable=g-import-not-at-top
  if os.path.exists(path):
    return path
  message = (f'needs the real test data at {path} (set NASJAX_TEST_DATA to '
             f'the directory holding {os.path.relpath(path, TEST_DATA)})')
  if os.environ.get('CI') == 'true':
    pytest.fail(f'CI=true and the test data is missing: {message}')
  pytest.skip(message)


import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

from nasjax import layers  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(autouse=True)
def _restore_depthwise_impl():
  """Runs and builders set the process-wide depthwise impl from their config
  (the ENAS tiny presets pick 'grouped'); each test starts with the one the
  previous test started with, whatever order the files run in."""
  impl = layers.depthwise_impl_name()
  yield
  layers.set_depthwise_impl(impl)
