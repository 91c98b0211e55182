"""Route groups of the query API, each on its own ``APIRouter``."""
