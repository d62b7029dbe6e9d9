"""`python -m hrpred ...` = the `hrpred` command."""

from hrpred.serve.cli import main

raise SystemExit(main())
