"""projections: the engine folding plan streams into states, and its projections."""
