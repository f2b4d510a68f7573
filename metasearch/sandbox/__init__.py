"""The candidate sandbox: AST policy (host), RestrictedPython (worker), worker processes with rlimits.

Public API (see docs/architecture.md): `Limits`, `Violation`, `check_policy`, `SandboxResult`, `SandboxPool`,
`run_unit_tests`. Importing this package does not import RestrictedPython: the host never compiles candidates.
"""

from metasearch.sandbox.limits import Limits
from metasearch.sandbox.policy import Violation, check_policy
from metasearch.sandbox.pool import SandboxPool, SandboxResult, run_unit_tests

ERROR_KINDS = ("policy", "syntax", "contract", "runtime", "timeout", "memory", "output", "crash", "lm")

__all__ = ["ERROR_KINDS", "Limits", "SandboxPool", "SandboxResult", "Violation", "check_policy", "run_unit_tests"]
