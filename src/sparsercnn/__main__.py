"""``python -m sparsercnn`` is the ``sparsercnn`` command."""

from sparsercnn.cli.main import main

raise SystemExit(main())
