#!/usr/bin/env python3
"""Static checks of ballast's deployment files: Dockerfile, .dockerignore, docker-compose.yml,
.env.example, deploy/kubernetes/ and the configs of config/.

No Docker engine or cluster is needed: the files are parsed and checked against each other and
against the gateway itself (every config, as each environment would load it, goes through
`ballast check`). Needs PyYAML and the debug binary (`cargo build`; or set $BALLAST_BIN).

    .venv/bin/python tests/deploy/check_deploy.py

Prints one line per check and closes with `N passed, M failed`; exits 1 when any failed.
The checks live in checks_docker.py, checks_compose.py and checks_kubernetes.py, in that order.
"""

from __future__ import annotations

import sys

# Importing a checks_* module registers its checks, in the order they run.
import checks_docker  # noqa: F401
import checks_compose  # noqa: F401
import checks_kubernetes  # noqa: F401
from checks_common import CHECKS, REPO, Skip, ballast_check, check, check_output_problem

# === the configs of config/ ==================================================================


@check("config/*.yaml: every config passes `ballast check` (dummy values for required vars)")
def configs_check():
    configs = sorted((REPO / "config").glob("*.yaml"))
    if not configs:
        return ["config/ holds no .yaml"]
    problems = []
    for config in configs:
        result = ballast_check(config.read_text(), {}, dummies=True)
        problems += check_output_problem(str(config.relative_to(REPO)), result)
    return problems


# === runner ==================================================================================


def main() -> int:
    passed = failed = skipped = 0
    for name, function in CHECKS:
        try:
            problems = function()
        except Skip as reason:
            print(f"SKIP  {name}: {reason}")
            skipped += 1
            continue
        except Exception as error:  # A broken file must fail its check, not the whole run.
            problems = [f"{type(error).__name__}: {error}"]
        if problems:
            failed += 1
            print(f"FAIL  {name}")
            for problem in problems:
                print(f"        - {problem}")
        else:
            passed += 1
            print(f"ok    {name}")
    summary = f"{passed} passed, {failed} failed"
    print(summary + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
