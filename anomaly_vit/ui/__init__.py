"""The operator page: drop photos on an export bundle, see verdicts and masks, set the threshold.

Runs on the export bundle and the light inferencer (`anomaly_vit.deploy`) only: nothing here
imports torch, Lightning, timm or Hydra. `page.build_page` builds the Gradio page; the logic it
shows (counts at a threshold, policy names, the table and its CSV) lives in plain modules.
"""
