"""nasjax: neural architecture search in JAX/Flax.

  import nasjax
  ds = nasjax.data.load('digits')
  found = nasjax.search(ds, 'digits')
  gdas = nasjax.search(ds, 'digits', space='nb201', strategy='gdas')
  trained = nasjax.retrain(ds, found.genotype, 'digits')
  enas = nasjax.enas_search(ds, 'digits')      # ENAS: controller + child
  cell = nasjax.rnn_search('synthetic')        # recurrent cell (PTB: a dir)
  lm = nasjax.retrain_lm(cell.genotype, 'synthetic')
  er = nasjax.enas_rnn_search('synthetic')     # ENAS recurrent cell

Modules: `configs` (the papers' presets), `data` (datasets), `genotype`
(derivation, the published zoo), `plot`, `platform` (process set-up); the
search spaces in `nasjax.search_spaces`, the one-shot strategies in
`nasjax.strategies` and their loop in `nasjax.one_shot`; the DARTS cell
search in `nasjax.darts`, ENAS in `nasjax.enas`, retraining in
`nasjax.final`.
"""

from nasjax import configs
from nasjax import data
from nasjax import genotype
from nasjax import history
from nasjax import one_shot
from nasjax import plot
from nasjax.api import enas_rnn_search
from nasjax.api import enas_search
from nasjax.api import retrain
from nasjax.api import retrain_lm
from nasjax.api import rnn_search
from nasjax.api import search
from nasjax.api import select
from nasjax.darts.search import SearchResult
from nasjax.final.train import TrainResult
from nasjax.genotype import Genotype
from nasjax.platform import setup

__version__ = '0.1.0'
