"""``python -m anomaly_vit.app``: the operator page on an export bundle; the Hydra main lives in `anomaly_vit.cli.app`."""

from anomaly_vit.cli.app import *  # noqa: F403
from anomaly_vit.cli.app import main

if __name__ == "__main__":
    main()
