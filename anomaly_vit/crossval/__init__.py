"""k-fold cross-validation by item: folds, one arm per fold (ViT or peer), out-of-fold pooling."""
