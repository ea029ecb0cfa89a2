"""The `enas_rnn_search` presets, for
--config=experiments/configs/enas_rnn_search.py:VARIANT (see
`nasjax.configs.enas_rnn_search`)."""
from nasjax.configs.enas_rnn_search import VARIANTS, get_config  # pylint: disable=unused-import
