"""Importers that turn public datasets into towersearch's catalogue and judgements files.

- :func:`import_instacart`: the Instacart 2017 products (and the aisle-retrieval task).
- :func:`import_esci`: the Amazon Shopping Queries dataset (ESCI), with graded judgements.
- :func:`import_crowdflower`: CrowdFlower real queries; one half becomes a search log, the other judgements.
- :func:`import_homedepot`: Home Depot real search terms and ratings; a seeded split becomes a log and judgements.
"""

from towersearch.data.importers.crowdflower import import_crowdflower, judgements_to_log
from towersearch.data.importers.esci import EsciSummary, import_esci
from towersearch.data.importers.homedepot import import_homedepot
from towersearch.data.importers.instacart import InstacartSummary, import_instacart

__all__ = [
    "EsciSummary",
    "InstacartSummary",
    "import_crowdflower",
    "import_esci",
    "import_homedepot",
    "import_instacart",
    "judgements_to_log",
]
