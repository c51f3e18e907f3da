"""The ``sparsercnn`` command line: argument parsing and short handlers over library calls."""
