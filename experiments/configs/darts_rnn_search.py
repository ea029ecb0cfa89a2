"""The `darts_rnn_search` presets, for
--config=experiments/configs/darts_rnn_search.py:VARIANT (see
`nasjax.configs.darts_rnn_search`)."""
from nasjax.configs.darts_rnn_search import VARIANTS, get_config  # pylint: disable=unused-import
