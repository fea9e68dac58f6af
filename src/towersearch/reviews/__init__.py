"""Product reviews: their format, labelling functions and the intent classifier."""
