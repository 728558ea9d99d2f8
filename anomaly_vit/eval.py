"""``python -m anomaly_vit.eval``: Evaluate a checkpoint; the Hydra main lives in `anomaly_vit.cli.eval`."""

from anomaly_vit.cli.eval import *  # noqa: F403
from anomaly_vit.cli.eval import main

if __name__ == "__main__":
    main()
