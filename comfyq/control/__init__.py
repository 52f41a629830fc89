"""Beat jobs of the ``control`` queue: the reconciler and output retention."""
