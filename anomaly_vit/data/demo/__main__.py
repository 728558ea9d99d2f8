"""``python -m anomaly_vit.data.demo --out DIR``: write the demo data set."""

from anomaly_vit.data.demo.dataset import main

if __name__ == "__main__":
    main()
