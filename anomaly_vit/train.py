"""``python -m anomaly_vit.train``: Train; the Hydra main lives in `anomaly_vit.cli.train`."""

from anomaly_vit.cli.train import *  # noqa: F403
from anomaly_vit.cli.train import main

if __name__ == "__main__":
    main()
