"""The repository as a user gets it: CI leaves their files alone, and nothing
a user reads or runs points outside the repository."""

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
