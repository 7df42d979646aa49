"""The one reader of CDK context (`cdk.json` context and `-c key=value` overrides).

Context values arrive as JSON values from `cdk.json` or as strings from `-c`, so every getter accepts
both and applies the same rules everywhere:

- **unset**: a missing key, `null` or `""` means "use the default" (every default lives in the code
  that reads the key, once; `cdk.json` holds no copies).
- **booleans**: `true`/`false`, or one of `true yes 1 on` / `false no 0 off` in any case.
- **numbers**: a JSON number or its text; integers must be whole (`"2"`, `2`, not `2.5` or `true`).
- **strings**: taken as given (no trimming), then checked against a pattern where one applies.

A value that breaks a rule fails synthesis with a `ConfigError` naming the key, the value and what
is allowed, before any resource is built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any


class ConfigError(ValueError):
    """A context value that cannot be used; the message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"cdk context '{key}' = {value!r} is not valid: {allowed}")
        self.key = key
        self.value = value


TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
FALSE_WORDS = frozenset({"false", "no", "0", "off"})
_INTEGER_TEXT = re.compile(r"-?\d+")


class ContextReader:
    """Typed access to context values; `lookup` is usually `app.node.try_get_context`."""

    def __init__(self, lookup: Callable[[str], Any]) -> None:
        self._lookup = lookup

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ContextReader:
        return cls(values.get)

    def raw(self, key: str) -> Any:
        """The value as given, or None when unset (missing, null or "")."""
        value = self._lookup(key)
        return None if value is None or value == "" else value

    def is_set(self, key: str) -> bool:
        return self.raw(key) is not None

    def string(self, key: str, default: str, *, pattern: str | None = None, allowed: str = "") -> str:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(key, value, allowed or "a string")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ConfigError(key, value, allowed or f"a string matching {pattern}")
        return value

    def optional_string(self, key: str, *, pattern: str, allowed: str) -> str | None:
        if not self.is_set(key):
            return None
        return self.string(key, "", pattern=pattern, allowed=allowed)

    def choice(self, key: str, default: Any, choices: Iterable[Any]) -> Any:
        """One of `choices`; integer choices also accept their text (`-c size=2048`)."""
        options = tuple(choices)
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str) and all(isinstance(o, int) for o in options):
            value = int(value) if _INTEGER_TEXT.fullmatch(value.strip()) else value
        if isinstance(value, bool) or value not in options:
            raise ConfigError(key, value, "one of " + ", ".join(map(str, options)))
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.raw(key)
        if value is None:
            return default
        return self._to_int(key, value, minimum, maximum)

    def optional_integer(self, key: str, *, minimum: int, maximum: int) -> int | None:
        value = self.raw(key)
        return None if value is None else self._to_int(key, value, minimum, maximum)

    def number(self, key: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self.raw(key)
        if value is None:
            return default
        allowed = f"a number from {minimum} to {maximum}"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(key, value, allowed)
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(key, value, allowed) from None
        if not math.isfinite(number) or not minimum <= number <= maximum:
            raise ConfigError(key, value, allowed)
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise ConfigError(key, value, "true or false (also yes/no, 1/0, on/off)")

    @staticmethod
    def _to_int(key: str, value: Any, minimum: int, maximum: int) -> int:
        allowed = f"an integer from {minimum} to {maximum}"
        number = value
        if isinstance(number, str) and _INTEGER_TEXT.fullmatch(number.strip()):
            number = int(number.strip())
        # bool is an int subclass in Python; `true` is never a valid count.
        if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= maximum:
            raise ConfigError(key, value, allowed)  # the value as given, e.g. '0' from `-c`
        return number
