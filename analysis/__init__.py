"""Pure statistics for experiment readouts: numpy/scipy maths over sufficient statistics, no I/O."""
