"""Built-in demo data set: a simulated stereo inspection rig that renders parts with small defects.

`generate_demo` / `ensure_demo` write it (see `demo.dataset` for the layout); `sample_item_spec`
draws one item, `render_item` renders its views. ``python -m anomaly_vit.data.demo --out DIR``.
"""

from anomaly_vit.data.demo.dataset import (
    class_assignment,
    ensure_demo,
    generate_demo,
    item_name,
    main,
)
from anomaly_vit.data.demo.params import (
    DEFAULT_CLASSES,
    DEFECT_KINDS,
    FORMAT_VERSION,
    GOOD,
    OWNED_ENTRIES,
    PARAMS_FILE,
    README_FILE,
    VIEWS,
    RenderParams,
)
from anomaly_vit.data.demo.render import render_item
from anomaly_vit.data.demo.sampling import sample_item_spec

__all__ = [
    "DEFAULT_CLASSES",
    "DEFECT_KINDS",
    "FORMAT_VERSION",
    "GOOD",
    "OWNED_ENTRIES",
    "PARAMS_FILE",
    "README_FILE",
    "VIEWS",
    "RenderParams",
    "class_assignment",
    "ensure_demo",
    "generate_demo",
    "item_name",
    "main",
    "render_item",
    "sample_item_spec",
]
