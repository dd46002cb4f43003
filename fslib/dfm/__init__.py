"""Dominant frequency maps (DFMs): files, search and shortcut evaluation.

The public names are available here, e.g. ``fslib.dfm.search`` (the search
function) and ``fslib.dfm.SearchResult``. The function hides the module of
the same name as an attribute, so import the module's other names with
``from fslib.dfm.search import ...``.
"""

from .io import (
    DFM_FORMAT_VERSION,
    DFM_LAYOUT,
    HEADER_KEYS,
    DFMFile,
    load_dfm,
    map_summary,
    plot_dfm,
    save_dfm,
)
from .evaluate import (
    JaccardIndex,
    ShortcutReport,
    jaccard,
    plot_dfms,
    plot_gallery,
    shortcut_table,
    transfer_table,
)
from .search import (
    DFMSelection,
    SearchResult,
    compare_maps,
    first_order_scores,
    merge_results,
    search,
)

__all__ = [
    "DFM_FORMAT_VERSION",
    "DFM_LAYOUT",
    "HEADER_KEYS",
    "DFMFile",
    "load_dfm",
    "map_summary",
    "plot_dfm",
    "save_dfm",
    "DFMSelection",
    "SearchResult",
    "compare_maps",
    "first_order_scores",
    "merge_results",
    "search",
    "JaccardIndex",
    "ShortcutReport",
    "jaccard",
    "plot_dfms",
    "plot_gallery",
    "shortcut_table",
    "transfer_table",
]
