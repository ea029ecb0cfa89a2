"""Search spaces as data: nothing here imports Flax."""
from nasjax.search_spaces.base import Choice
from nasjax.search_spaces.darts_cell import DartsCellSpace, PRIMITIVES
