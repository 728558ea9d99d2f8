"""``python -m anomaly_vit.pretrain``: self-supervised pretraining; the Hydra main lives in
`anomaly_vit.cli.pretrain`."""

from anomaly_vit.cli.pretrain import *  # noqa: F403
from anomaly_vit.cli.pretrain import main

if __name__ == "__main__":
    main()
