"""``python -m anomaly_vit.predict``: Run a bundle on photos; the Hydra main lives in `anomaly_vit.cli.predict`."""

from anomaly_vit.cli.predict import *  # noqa: F403
from anomaly_vit.cli.predict import main

if __name__ == "__main__":
    main()
