"""Building models from values that are valid by construction, without pydantic's work.

``model_construct`` skips validation but still walks every field in Python (aliases,
defaults) and costs about as much as validating a small model; the worker builds three
models per record from values it already holds validated (its source position, the
policy's input, the decision), so it uses :func:`construct` instead.

Contract: ``fields`` names **every** field of ``cls`` (defaults are not filled in) with a
value that already satisfies the field's type and constraints. Nothing is checked except,
in debug runs, that the field names are exactly the model's. The result compares equal
to, and serialises byte for byte like, the validated model (tests pin both).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["construct"]

M = TypeVar("M", bound=BaseModel)

_set = object.__setattr__


def construct(cls: type[M], fields: dict[str, Any]) -> M:
    """An instance of ``cls`` holding ``fields`` as they are (see the module contract).

    ``fields`` becomes the instance's ``__dict__``: the caller hands it over and must not
    change it afterwards. Models with extra fields, private attributes or a
    ``model_post_init`` are not supported.
    """
    assert fields.keys() == cls.__pydantic_fields__.keys(), (cls.__name__, sorted(fields))
    model = cls.__new__(cls)
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", set(fields))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model
