"""Fast paths for the recurrences, each proven equal to the plain loop over its cell."""
