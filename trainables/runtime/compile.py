"""`runtime.compile`: the backbone's training forward through torch.compile, or eager after
one note when it cannot be compiled.

torch.compile compiles on the first call (and again for each new input shape), so failure
shows there: no C++ compiler or Triton for the device, an unsupported Python, an operator the
backend rejects. The wrapper catches those compile errors only (an error raised by the model
itself propagates as it would eagerly), prints one line naming the cause, and from then on
calls the eager function. Compile errors are raised before the compiled graph runs, so the
eager call that replaces it sees the same inputs and state. Nothing is imported or wrapped
before the first call: a run that never trains a step never pays for torch's compiler stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class Compiled:
    """`fn` compiled by `compiler` (torch.compile by default; `options` go to it), falling
    back to `fn` itself with one note to `log` when compiling fails. `what` names it in the
    note; `errors` are the exception types that mean "could not compile" (torch's own by
    default)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        what: str,
        log: Callable[[str], None] | None = print,
        compiler: Callable[..., Callable[..., Any]] | None = None,
        errors: tuple[type[BaseException], ...] | None = None,
        **options: Any,
    ) -> None:
        self.eager = fn
        self.what = what
        self.log = log
        self.compiler = compiler or torch.compile
        self.errors = errors
        self.options = options
        self.fast: Callable[..., Any] | None = None
        self.fell_back: str | None = None
        """Why compiling failed; None while the compiled function is (to be) used."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.fell_back is not None:
            return self.eager(*args, **kwargs)
        if self.fast is None:
            try:
                self.fast = self.compiler(self.eager, **self.options)
            except Exception as err:  # refused up front (e.g. an unsupported Python)
                self.fall_back(err)
                return self.eager(*args, **kwargs)
            if self.errors is None:
                self.errors = compile_errors()
        try:
            return self.fast(*args, **kwargs)
        except self.errors as err:
            self.fall_back(err)
            return self.eager(*args, **kwargs)

    def fall_back(self, err: BaseException) -> None:
        """Use the eager function from now on, and say why, once."""
        self.fast = None
        self.fell_back = cause(err)
        if self.log is not None:
            self.log(
                f"hmtl: note: runtime.compile: {self.what} could not be compiled "
                f"({self.fell_back}); training continues without torch.compile"
            )


def cause(err: BaseException) -> str:
    """The root cause of a compile error as `Type: first line` (torch wraps a backend's
    error in its own, whose message is mostly advice on debugging)."""
    seen = {id(err)}
    while True:
        inner = getattr(err, "inner_exception", None) or err.__cause__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        err = inner
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else 'no message'}"[:300]


def compile_errors() -> tuple[type[BaseException], ...]:
    """The exception types torch.compile raises when it cannot compile (not model errors)."""
    # Lazy: torch._dynamo takes seconds to import; only runs that compile pay for it.
    import torch._dynamo.exc as dynamo_exc

    found: list[type[BaseException]] = [dynamo_exc.TorchDynamoException]
    try:
        # Lazy: as above; Inductor's own errors (a C++ or Triton build that fails).
        import torch._inductor.exc as inductor_exc
    except ImportError:  # a torch without Inductor
        return tuple(found)
    for name in ("InductorError", "CppCompileError", "CUDACompileError"):
        kind = getattr(inductor_exc, name, None)
        if isinstance(kind, type) and issubclass(kind, BaseException):
            found.append(kind)
    return tuple(found)
