"""``python -m anomaly_vit.export``: Export a bundle; the Hydra main lives in `anomaly_vit.cli.export`."""

from anomaly_vit.cli.export import *  # noqa: F403
from anomaly_vit.cli.export import main

if __name__ == "__main__":
    main()
