"""Errors a user can fix, and the config checks that raise them.

`UserError` marks bad input: a config field or value, missing or corrupt
data, an unknown genotype or op, a batch that does not divide across the
devices, a workdir that cannot be written. The binaries print its message
alone (no traceback) and exit with status 2; any other exception is a bug
and keeps its traceback. `data.DataError` and `genotype.GenotypeError` are
`UserError`s.

`Fields` checks a config before any work, naming the field it refuses:

  f = Fields(config)
  f.positive('epochs', 'optimizer.learning_rate')
  f.open_interval('data.train_portion', 0, 1)
  f.one_of('search.arch_mode', ARCH_MODES)
"""

from typing import Any, Iterable


class UserError(ValueError):
  """Bad input that the user can fix; the message says what and where."""


class ConfigError(UserError):
  """A config field is missing or has a value the run cannot use."""


class Fields:
  """Checks fields of a (ml_collections) config, by dotted name."""

  def __init__(self, config, prefix: str = 'config'):
    self.config, self.prefix = config, prefix

  def name(self, field: str) -> str:
    return f'{self.prefix}.{field}'

  def get(self, field: str) -> Any:
    obj = self.config
    for part in field.split('.'):
      try:
        obj = obj[part]
      except (KeyError, AttributeError, TypeError):
        raise ConfigError(f'{self.name(field)} is missing.') from None
    return obj

  def _number(self, field: str, integer: bool = False):
    value = self.get(field)
    ok = (isinstance(value, int) if integer else
          isinstance(value, (int, float)))
    if not ok or isinstance(value, bool):
      kind = 'an integer' if integer else 'a number'
      raise ConfigError(f'{self.name(field)} must be {kind}, got {value!r}.')
    return value

  def _fail(self, field, value, what):
    raise ConfigError(f'{self.name(field)} must be {what}, got {value!r}.')

  def positive(self, *fields: str, integer: bool = False) -> None:
    for field in fields:
      value = self._number(field, integer)
      if not value > 0:
        self._fail(field, value, '> 0')

  def at_least(self, low, *fields: str, integer: bool = True) -> None:
    for field in fields:
      value = self._number(field, integer)
      if value < low:
        self._fail(field, value, f'>= {low}')

  def open_interval(self, field: str, low: float, high: float) -> None:
    value = self._number(field)
    if not low < value < high:
      self._fail(field, value, f'in ({low}, {high})')

  def half_open(self, field: str, low: float, high: float) -> None:
    """low <= value < high."""
    value = self._number(field)
    if not low <= value < high:
      self._fail(field, value, f'in [{low}, {high})')

  def one_of(self, field: str, options: Iterable) -> None:
    value, options = self.get(field), tuple(options)
    if value not in options:
      self._fail(field, value, f'one of {options}')

  def divisible(self, field: str, devices: int) -> None:
    value = self._number(field, integer=True)
    if value % devices:
      raise ConfigError(
          f'{self.name(field)}={value} must be divisible by the number of '
          f'devices ({devices}); choose a multiple of {devices} or set '
          f'{self.prefix}.num_devices.')

  def check(self, ok: bool, field: str, message: str) -> None:
    if not ok:
      raise ConfigError(f'{self.name(field)}: {message}')
