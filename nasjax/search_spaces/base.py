"""Choice nodes: the common currency of search spaces (TuNAS `schema` style).

A search space is described by a flat, ordered tuple of `Choice`s, each with a
stable path name and its options. A differentiable method (DARTS) keeps one
row of logits per choice it relaxes; a sampling method (ENAS, random search)
emits one index per choice. Spaces may expose more structure than this (the
DARTS cell keeps its alpha as one [edges, ops] matrix per cell type), but every
space can be enumerated as choices.

Synopsis:

  c = Choice('normal/node0/edge1', ('none', 'sep_conv_3x3'))
  c.index('sep_conv_3x3')  # 1
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Choice:
  """One decision: pick one of `options`.

  Attributes:
    path: stable, '/'-separated name (used as a key in logs and checkpoints).
    options: the names (or values) to choose from.
  """
  path: str
  options: tuple

  def __post_init__(self):
    if not self.options:
      raise ValueError(f'Choice {self.path!r} has no options.')

  @property
  def size(self) -> int:
    return len(self.options)

  def index(self, option) -> int:
    try:
      return self.options.index(option)
    except ValueError:
      raise ValueError(f'{option!r} is not an option of {self.path!r}; valid: '
                       f'{list(self.options)}.') from None
