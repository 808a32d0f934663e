"""Error kinds, defined once and mapped to each front-end's vocabulary by its adapter.

    ZerotouchError
     ├── InvalidArgument      bad input; carries the offending fields
     ├── Unauthenticated      no or unknown credentials
     ├── PermissionDenied     known caller, not allowed
     ├── NotFound             no such resource (or not visible to the caller)
     ├── AlreadyExists        a unique thing exists already
     ├── FailedPrecondition   the resource's state does not allow the operation
     │    └── IllegalTransition   a lifecycle table refused a move
     ├── ResourceExhausted    a per-resource limit was reached
     ├── RateLimited          too many attempts for now; try again after ``retry_after`` s
     ├── Unavailable          a dependency did not answer
     └── PeerFailed           a partner platform refused or could not be used

Each kind has a default snake_case ``code``; raisers may give a more specific one
(``already_claimed``, ``command_limit_reached``) that stays stable for API users.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field that failed validation, named by its path in the request."""

    field: str
    message: str


class ZerotouchError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(ZerotouchError):
    code = "validation_failed"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        errors: list[FieldError] | tuple[FieldError, ...] = (),
    ) -> None:
        super().__init__(message, code=code)
        self.errors = tuple(errors)

    @classmethod
    def for_field(cls, field: str, message: str) -> InvalidArgument:
        return cls(f"{field}: {message}", errors=[FieldError(field, message)])


class Unauthenticated(ZerotouchError):
    code = "unauthenticated"


class PermissionDenied(ZerotouchError):
    code = "permission_denied"


class NotFound(ZerotouchError):
    code = "not_found"


class AlreadyExists(ZerotouchError):
    code = "already_exists"


class FailedPrecondition(ZerotouchError):
    code = "failed_precondition"


class IllegalTransition(FailedPrecondition):
    code = "illegal_transition"


class ResourceExhausted(ZerotouchError):
    code = "resource_exhausted"


class RateLimited(ZerotouchError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(ZerotouchError):
    code = "unavailable"


class PeerFailed(ZerotouchError):
    """A partner platform (OCPI) answered wrongly, refused, or could not be reached."""

    code = "peer_failed"
