"""``python -m anomaly_vit.cv``: Cross-validation; the Hydra main lives in `anomaly_vit.cli.cv`."""

from anomaly_vit.cli.cv import *  # noqa: F403
from anomaly_vit.cli.cv import main

if __name__ == "__main__":
    main()
