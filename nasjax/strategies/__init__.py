"""One-shot search strategies: how a step mixes a supernet's ops.

Each strategy is a frozen dataclass (hashable: a static argument of the
compiled step) with

  init_alpha(key, shapes): the architecture parameters at the start, from
    the space's `alpha_shapes()`;
  learns_alpha: whether the bilevel step updates alpha (DARTS, GDAS) or only
    the weights (random sampling);
  mixing(alpha, key, progress): `{cell type: nasjax.mixing.Mixing}` for one
    network pass, traceable; `key` is fresh per pass, `progress` the epoch
    fraction of the search in [0, 1] (GDAS anneals its temperature by it).

ENAS (`Enas`) also has a controller: alpha is its weights and reward
baseline, `update` is one REINFORCE update, and the one-shot loop runs its
updates after every epoch (`samples_cells`: the derived cell is the best of
cells sampled from it).

They import no space: `nasjax.mixing` is the whole protocol. Beside them,
`controller` (ENAS's LSTM samplers, chosen by the decisions'
`controller_kind`) and `reinforce` (its REINFORCE update), which ENAS's own
searches (`nasjax.enas`) use too.
"""

from nasjax.mixing import OpSequence
from nasjax.strategies.darts import Darts
from nasjax.strategies.enas import Enas
from nasjax.strategies.gdas import Gdas
from nasjax.strategies.random_sampling import RandomSampling

STRATEGIES = {'darts': Darts, 'gdas': Gdas, 'random_sampling': RandomSampling,
              'enas': Enas}
