"""Pictures of a run: training curves, confusion matrices, attention overlays, the sweep plot."""
