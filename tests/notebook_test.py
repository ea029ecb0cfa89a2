"""Every notebook runs top to bottom in tiny mode, on 8 CPU devices.

The kernel inherits this process's environment (tests/conftest.py): 8 fake
CPU devices (so the notebook's multi-device path runs), the test compile
cache; NASJAX_TINY=1 switches the notebook to the bundled digits.
"""

import glob
import os

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, 'notebooks', '*.ipynb')))


def _name(path):
  return os.path.basename(path)


def test_there_are_notebooks():
  assert NOTEBOOKS


@pytest.mark.parametrize('path', NOTEBOOKS, ids=_name)
def test_committed_notebook_has_no_outputs(path):
  nb = nbformat.read(path, as_version=4)
  dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and
           (c.get('outputs') or c.get('execution_count') is not None)]
  assert not dirty, f'{_name(path)}: clear the outputs of cells {dirty}'


def _outputs(nb):
  for c in nb.cells:
    for out in c.get('outputs', []):
      yield out


@pytest.mark.parametrize('path', NOTEBOOKS, ids=_name)
def test_notebook_runs_in_tiny_mode_on_8_devices(path, monkeypatch):
  from nbclient import NotebookClient  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('NASJAX_TINY', '1')
  assert 'device_count=8' in os.environ['XLA_FLAGS']
  nb = nbformat.read(path, as_version=4)
  NotebookClient(nb, timeout=1200, kernel_name='python3',
                 resources={'metadata': {'path': ROOT}}).execute()
  text = ''.join(o.get('text', '') for o in _outputs(nb)
                 if o.output_type == 'stream')
  assert '8 devices' in text, text[-2000:]
  kinds = [k for o in _outputs(nb) for k in o.get('data', {})]
  if _name(path) == 'enas_quickstart.ipynb':
    assert 'derived arc:' in text and 'random arcs' in text, text[-2000:]
    assert kinds.count('image/png') >= 2, kinds    # controller, samples
    assert kinds.count('image/svg+xml') == 2, kinds  # the two cells
  if _name(path) == 'rnn_quickstart.ipynb':
    assert 'derived cell: s1=' in text and 'test perplexity' in text, text[-2000:]
    assert 'ENAS cell: s1=' in text and 'random cells: median' in text, text[-2000:]
    # alpha, perplexity, controller, sampled cells
    assert kinds.count('image/png') >= 4, kinds
    assert kinds.count('image/svg+xml') == 1, kinds  # the cell
  if _name(path) == 'nb201_quickstart.ipynb':
    assert 'derived cell: |' in text and 'random cells: median' in text, text[-2000:]
    assert 'DARTS cell: |' in text, text[-2000:]
    # The op weights and the Hessian monitor's eigenvalues.
    assert kinds.count('image/png') == 2, kinds
  if _name(path) == 'darts_quickstart.ipynb':
    assert 'test accuracy' in text, text[-2000:]
    assert kinds.count('image/png') >= 2, kinds    # alpha and curves
    assert kinds.count('image/svg+xml') == 2, kinds  # the two cells


@pytest.mark.parametrize('path', NOTEBOOKS, ids=_name)
def test_first_cell_installs_from_nasjax_repo_or_says_what_to_set(
    path, monkeypatch, tmp_path):
  """Where nasjax is not installed (a fresh Colab runtime), the first cell
  pip-installs NASJAX_REPO (a git URL or a checkout's path), or stops with
  an error naming NASJAX_REPO; it never installs from a placeholder URL."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  source = nbformat.read(path, as_version=4).cells[1].source
  calls = []
  monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
  monkeypatch.setattr(subprocess, 'check_call', calls.append)
  monkeypatch.delenv('NASJAX_REPO', raising=False)
  with pytest.raises(RuntimeError, match='set NASJAX_REPO in this cell'):
    exec(source, {})  # pylint: disable=exec-used
  assert not calls
  for repo, target in (('https://github.com/o/nasjax',
                        'git+https://github.com/o/nasjax'),
                       (str(tmp_path), str(tmp_path))):
    monkeypatch.setenv('NASJAX_REPO', repo)
    exec(source, {})  # pylint: disable=exec-used
    assert calls.pop()[-1] == target
