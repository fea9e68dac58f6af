"""Importers that turn public datasets into towersearch's catalogue and judgements files.

- :func:`import_instacart`: the Instacart 2017 products (and the aisle-retrieval task).
- :func:`import_esci`: the Amazon Shopping Queries dataset (ESCI), with graded judgements.
"""

from towersearch.data.importers.esci import EsciSummary, import_esci
from towersearch.data.importers.instacart import InstacartSummary, import_instacart

__all__ = ["EsciSummary", "InstacartSummary", "import_esci", "import_instacart"]
