"""Typed errors: one base class with an exit code and a hint, one subclass per failure kind.

Library code raises these; exactly one place (``_guard`` in tasks.py) turns them into a
one-line message and an exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CONFIG = 2  # usage or configuration: unknown recipe, bad flag, unsupported arch
    NO_MATCH = 3  # no compatible wheel in the store
    BUILD = 4  # the source build failed
    KERNEL = 5  # the kernel test ran and failed
    STORE = 6  # store or network: unreadable, malformed, unreachable, refused
    INTEGRITY = 7  # hash, size, tags or archs disagree; hostile file names
    MACHINE = 8  # machine unsuitable: no GPU for a step that needs one, nvcc too old
    UNVERIFIED = 9  # the kernel test could not run here (no GPU): the wheel stays unverified
    ENVIRONMENT = 10  # the target interpreter: missing, pip failed, stack differs


class SageTasksError(Exception):
    """Base class. ``hint`` says what to do next; ``code`` is the process exit code."""

    code: ExitCode = ExitCode.CONFIG
    kind = "error"
    # what to do next when the raiser knows nothing more specific: every error line has a hint
    default_hint = "run the task again with --verbose for details"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def one_line(self) -> str:
        text = f"{self.kind}: {self.message}"
        if self.hint:
            text += f" (next: {self.hint})"
        return " ".join(text.split())


class ConfigError(SageTasksError):
    code = ExitCode.CONFIG
    kind = "config error"
    default_hint = "check the flag, variable or file named above (`invoke --help TASK` lists the flags)"


class NoMatchError(SageTasksError):
    code = ExitCode.NO_MATCH
    kind = "no compatible wheel"
    default_hint = "run `invoke fetch --dry-run` to see why each stored wheel was rejected, or `invoke build`"


class BuildError(SageTasksError):
    code = ExitCode.BUILD
    kind = "build failed"
    default_hint = "read the build log (SAGE_TASKS_CACHE/logs) and fix what it names, then build again"


class KernelTestError(SageTasksError):
    code = ExitCode.KERNEL
    kind = "kernel test failed"
    default_hint = "do not use this wheel; read the kernel report and rebuild or yank it"


class StoreError(SageTasksError):
    code = ExitCode.STORE
    kind = "store error"
    default_hint = "check the store named above (SAGE_STORE or HF_REPO_ID) and try again"


class ConflictError(StoreError):
    """Someone else changed the store between our read and our write (retryable)."""

    kind = "store conflict"


class IntegrityError(SageTasksError):
    code = ExitCode.INTEGRITY
    kind = "integrity error"
    default_hint = "do not use the file named above; rebuild or re-publish it from a trusted build"


class MachineError(SageTasksError):
    code = ExitCode.MACHINE
    kind = "machine unsuitable"
    default_hint = "run the step on a machine that has what is named above, or pass --arch"


class UnverifiedError(SageTasksError):
    code = ExitCode.UNVERIFIED
    kind = "unverified"
    default_hint = "run `invoke test-kernel` on a machine with the GPU"


class EnvironmentProblem(SageTasksError):
    code = ExitCode.ENVIRONMENT
    kind = "environment error"
    default_hint = "check the interpreter named by --python (or PYTHON_BIN) and its packages"


class EnvironmentBusy(EnvironmentProblem):
    """Another sage-tasks process held the environment's lock for longer than we would wait."""

    kind = "environment busy"


class Interrupted(EnvironmentProblem):
    """SIGINT or SIGTERM arrived while an install was open: it was rolled back."""

    kind = "interrupted"


class CommandFailed(SageTasksError):
    """A subprocess returned non-zero. Callers usually re-raise it as their own kind."""

    code = ExitCode.ENVIRONMENT
    kind = "command failed"

    default_hint = "read the command's output above"

    def __init__(self, args: list[str], returncode: int, tail: str = "", hint: str | None = None):
        shown = " ".join(args)
        super().__init__(f"`{shown}` exited with {returncode}", hint)
        self.args_list = args
        self.returncode = returncode
        self.tail = tail
