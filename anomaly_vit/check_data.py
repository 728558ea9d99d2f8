"""``python -m anomaly_vit.check_data``: Check the data; the Hydra main lives in `anomaly_vit.cli.check_data`."""

from anomaly_vit.cli.check_data import *  # noqa: F403
from anomaly_vit.cli.check_data import main

if __name__ == "__main__":
    main()
