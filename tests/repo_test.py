"""The repository as a user gets it: CI leaves their files alone, and nothing
a user reads or runs points outside the repository."""

import ast
import os
import re
import shutil
import stat
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ci_script_keeps_the_users_venv(tmp_path):
  """.ci/run in a copy of the repository, with stand-ins for python3, pip
  and pytest: the .venv that README tells users to create survives."""
  repo = tmp_path / 'repo'
  (repo / '.ci').mkdir(parents=True)
  shutil.copy(os.path.join(ROOT, '.ci', 'run'), repo / '.ci' / 'run')
  (repo / 'requirements.txt').write_text('')
  (repo / '.venv').mkdir()
  (repo / '.venv' / 'mine').write_text('a user file')
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  # python3 -m venv DIR: make DIR/bin/{pip,python} that succeed.
  fake = bin_dir / 'python3'
  fake.write_text('#!/bin/sh\n'
                  'dir="$3"; mkdir -p "$dir/bin"\n'
                  'printf "#!/bin/sh\\nexit 0\\n" > "$dir/bin/pip"\n'
                  'printf "#!/bin/sh\\nexit 0\\n" > "$dir/bin/python"\n'
                  'chmod +x "$dir/bin/pip" "$dir/bin/python"\n')
  fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}')
  out = subprocess.run(['bash', str(repo / '.ci' / 'run')], env=env,
                       capture_output=True, text=True, timeout=60,
                       check=False)
  assert out.returncode == 0, out.stderr
  assert (repo / '.venv' / 'mine').read_text() == 'a user file'


def _project_files():
  for top in ('README.md', 'BUILD.md', 'nasjax', 'experiments', 'data',
              'benchmarks', 'docs', '.ci'):
    path = os.path.join(ROOT, top)
    if os.path.isfile(path):
      yield path
      continue
    for dirpath, _, names in os.walk(path):
      for name in names:
        if name.endswith(('.py', '.md', '.txt', '.toml')) or top == '.ci':
          yield os.path.join(dirpath, name)


def test_nothing_points_outside_the_repository():
  """The library, binaries, configs and documents cite the upstream
  repositories or docs/, never a folder beside this one."""
  pattern = re.compile(r'\.\./shared|shared/(reference|data)')
  offenders = []
  for path in _project_files():
    with open(path, encoding='utf-8') as f:
      for n, line in enumerate(f, 1):
        if pattern.search(line):
          offenders.append(f'{os.path.relpath(path, ROOT)}:{n}: {line.strip()}')
  assert not offenders, '\n'.join(offenders)


def _nasjax_imports(path):
  """The nasjax modules a file imports (at any depth, lazy imports too)."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name.startswith('nasjax')}
    elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith(
        'nasjax'):
      out |= {f'{node.module}.{a.name}' for a in node.names}
  return out


# The layers of docs/design.md's import picture that hold today.
_MACHINERY = ('bilevel', 'optim', 'loop', 'checkpoint', 'parallel',
              'train_state', 'progress', 'mixing', 'layers', 'errors',
              'types', 'platform', 'hessian')
_ABOVE_MACHINERY = ('darts', 'enas', 'strategies', 'search_spaces',
                    'one_shot', 'final', 'api', 'genotype', 'configs')


def test_the_import_picture_holds():
  """Strategies import no space and no other strategy (ENAS's module its
  controller and REINFORCE), spaces import no strategy, and the training
  machinery imports neither, nor the paper packages."""
  pkg = os.path.join(ROOT, 'nasjax')
  crossings = []

  def check(rel, forbidden, allowed=()):
    for name in sorted(_nasjax_imports(os.path.join(pkg, rel))):
      package, module = (name.split('.') + [''])[1:3]
      if ((package in forbidden or f'{package}.{module}' in forbidden) and
          f'{package}.{module}' not in allowed):
        crossings.append(f'nasjax/{rel} imports {name}')

  strategies = [f for f in os.listdir(os.path.join(pkg, 'strategies'))
                if f.endswith('.py')]
  for f in strategies:
    others = {f'strategies.{g[:-3]}' for g in strategies
              if g not in (f, '__init__.py')}
    allowed = ({'strategies.controller', 'strategies.reinforce'}
               if f == 'enas.py' else
               {'strategies.controller'} if f == 'reinforce.py' else set())
    if f == '__init__.py':
      allowed = others
    check(f'strategies/{f}', {'search_spaces', 'darts', 'enas', 'final',
                              'genotype', 'one_shot', *others}, allowed)
  for root, _, files in os.walk(os.path.join(pkg, 'search_spaces')):
    for f in files:
      if f.endswith('.py'):
        check(os.path.relpath(os.path.join(root, f), pkg),
              {'strategies', 'one_shot'})
  for m in _MACHINERY:
    check(f'{m}.py', set(_ABOVE_MACHINERY))
  assert not crossings, '\n'.join(crossings)
