"""The papers' settings and small variants, as ml_collections ConfigDicts.

The absl binaries read the same presets (experiments/configs/*.py point
at these modules). Every field is commented in its module.

  cfg = configs.search('cifar10')     # DARTS search, the paper's setting
  cfg = configs.retrain('digits')     # retraining a genotype, small
  cfg = configs.rnn_search('ptb')     # DARTS recurrent search (PTB)
  cfg = configs.enas_rnn('ptb')       # ENAS recurrent search (PTB)
  cfg = configs.language_model('ptb') # retraining a recurrent cell
  cfg = configs.one_shot('nb201_gdas') # a space and a strategy
  cfg.epochs = 10                     # any field can be changed
"""
from nasjax.configs import darts_rnn_search
from nasjax.configs import darts_search
from nasjax.configs import darts_train
from nasjax.configs import enas_rnn_search
from nasjax.configs import enas_search
from nasjax.configs import lm_train
from nasjax.configs import one_shot_search
from nasjax.configs import selection


def search(variant: str = 'cifar10'):
  """A DARTS search preset: 'cifar10', 'cifar10_subset', 'digits', 'tiny'."""
  return darts_search.get_config(variant)


def rnn_search(variant: str = 'ptb'):
  """A DARTS recurrent search preset: 'ptb', 'synthetic', 'tiny'."""
  return darts_rnn_search.get_config(variant)


def language_model(variant: str = 'ptb'):
  """A language-model retraining preset: 'ptb', 'synthetic', 'tiny'."""
  return lm_train.get_config(variant)


def enas(variant: str = 'micro'):
  """An ENAS search preset: 'micro', 'macro', 'digits', 'digits_long',
  'micro_tiny', 'macro_tiny'."""
  return enas_search.get_config(variant)


def enas_rnn(variant: str = 'ptb'):
  """An ENAS recurrent search preset: 'ptb', 'synthetic', 'tiny'."""
  return enas_rnn_search.get_config(variant)


def retrain(variant: str = 'cifar10'):
  """A retraining preset: 'cifar10', 'imagenet', 'cifar10_subset', 'digits',
  'tiny'."""
  return darts_train.get_config(variant)


def one_shot(variant: str = 'nb201_gdas'):
  """A one-shot search preset, `<space>_<strategy>[_<size>]`: e.g.
  'nb201_gdas', 'nb201_darts', 'nb201_darts2', 'nb201_rsps', with '_subset',
  '_digits' or '_tiny' (`nasjax.configs.one_shot_search.VARIANTS`)."""
  return one_shot_search.get_config(variant)
