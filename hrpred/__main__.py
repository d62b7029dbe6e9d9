"""`python -m hrpred ...` = the `hrpred` command."""

from hrpred.cli import main

raise SystemExit(main())
