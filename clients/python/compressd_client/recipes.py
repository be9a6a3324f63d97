"""Recipes: a dict, YAML/JSON text, a .yaml/.json file or a Recipe message,
turned into a compressd.v1.Recipe the way compressctl does it (common/recipe.cc):
YAML scalars typed like yaml-cpp there (a quoted scalar is always a string, so
`pattern: "2:4"`; `yes`/`on` stay strings), unknown fields rejected with their
full path, then protobuf's JSON mapping (snake_case or lowerCamelCase names).
Defaults and range checks are the server's (SubmitJob), so the recipe is sent
as written."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ._proto import recipe_pb2
from .errors import InvalidArgument, NotFound, ResourceExhausted

RecipeLike = Union[recipe_pb2.Recipe, Mapping[str, Any], str, "os.PathLike[str]"]

MAX_RECIPE_BYTES = 1 << 20
_MAX_DEPTH = 32
_INT = re.compile(r"[-+]?[0-9]+")
_RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


def _error(message: str) -> InvalidArgument:
    return InvalidArgument(f"recipe: {message}")


def _scalar(node: yaml.ScalarNode) -> Any:
    """A plain scalar becomes an int, float, bool or None when it looks like
    one (as common/recipe.cc ScalarToJson); quoted or block scalars stay strings."""
    s = node.value
    if node.style is not None:
        return s
    if _INT.fullmatch(s):
        value = int(s)
        if -(1 << 63) <= value < (1 << 63):
            return value
    if s and (s[0] in "+-." or s[0].isdigit()) and not any(c in s for c in "xX_"):
        try:
            return float(s)
        except ValueError:
            pass
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if s in ("null", "Null", "NULL", "~", ""):
        return None
    return s


def _to_plain(node: yaml.Node, path: str, depth: int) -> Any:
    """The YAML node tree as dicts, lists and scalars; `path` names the field."""
    where = path or "<top level>"
    if depth > _MAX_DEPTH:
        raise _error(f"{where}: nested deeper than {_MAX_DEPTH}")
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_to_plain(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value)]
    result: Dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _error(f"{where}: keys must be plain strings")
        key = key_node.value
        child = f"{path}.{key}" if path else key
        if key in result:
            raise _error(f'duplicate field "{child}"')
        result[key] = _to_plain(value_node, child, depth + 1)
    return result


def parse_recipe_text(text: str) -> recipe_pb2.Recipe:
    """Parses YAML (or JSON) recipe text. InvalidArgument names the line and
    column of a syntax error, or the path of an unknown or mistyped field."""
    if len(text.encode("utf-8")) > MAX_RECIPE_BYTES:
        raise ResourceExhausted(f"recipe: larger than {MAX_RECIPE_BYTES} bytes")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise _error(f"syntax error at {where}{error.problem}") from error
    except yaml.YAMLError as error:
        raise _error(f"syntax error: {error}") from error
    doc = {} if root is None else _to_plain(root, "", 0)
    if doc is None:
        doc = {}
    return recipe_from_dict(doc)


def _find_field(desc: Descriptor, key: str) -> Union[FieldDescriptor, None]:
    for field in desc.fields:
        if key in (field.name, field.json_name, field.camelcase_name):
            return field
    return None


def _is_repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 5.28; `label` before
    return bool(flag) if flag is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _check_fields(value: Any, desc: Descriptor, path: str) -> None:
    """Rejects keys naming no field of `desc` and lists/mappings where the other
    is expected, with the full path (as common/recipe.cc CheckKnownFields)."""
    if not isinstance(value, Mapping):
        return
    for key, child in value.items():
        child_path = f"{path}.{key}" if path else str(key)
        field = _find_field(desc, str(key))
        if field is None:
            known = ", ".join(f.name for f in desc.fields)
            raise _error(f'unknown field "{child_path}" (known fields of '
                         f"{path or '<top level>'}: {known})")
        if child is None:
            continue
        is_map = (field.message_type is not None and field.message_type.GetOptions().map_entry)
        repeated = _is_repeated(field)
        if repeated and not is_map and not isinstance(child, list):
            raise _error(f"{child_path}: expected a list")
        if field.cpp_type != FieldDescriptor.CPPTYPE_MESSAGE:
            continue
        if (is_map or not repeated) and not isinstance(child, Mapping):
            raise _error(f"{child_path}: expected a mapping of fields")
        if is_map:
            continue
        items = enumerate(child) if repeated else [(None, child)]
        for i, item in items:
            item_path = child_path if i is None else f"{child_path}[{i}]"
            if not isinstance(item, Mapping):
                raise _error(f"{item_path}: expected a mapping of fields")
            _check_fields(item, field.message_type, item_path)


def recipe_from_dict(doc: Mapping[str, Any]) -> recipe_pb2.Recipe:
    """A Recipe from a dict in protobuf's JSON mapping (the YAML's structure)."""
    if not isinstance(doc, Mapping):
        raise _error("the top level must be a mapping of fields")
    _check_fields(doc, recipe_pb2.Recipe.DESCRIPTOR, "")
    recipe = recipe_pb2.Recipe()
    try:
        json_format.ParseDict(dict(doc), recipe, ignore_unknown_fields=False)
    except json_format.ParseError as error:
        raise _error(str(error)) from error
    return recipe


def load_recipe(recipe: RecipeLike) -> recipe_pb2.Recipe:
    """A Recipe from any accepted form: a Recipe (copied), a dict, a path to a
    recipe file (a PathLike, or a one-line str naming an existing file or
    ending in .yaml/.yml/.json), or YAML/JSON text.
    Errors about a file's content are prefixed with its path."""
    if isinstance(recipe, recipe_pb2.Recipe):
        copy = recipe_pb2.Recipe()
        copy.CopyFrom(recipe)
        return copy
    if isinstance(recipe, Mapping):
        return recipe_from_dict(recipe)
    is_path = isinstance(recipe, os.PathLike) or (
        isinstance(recipe, str) and "\n" not in recipe and
        (recipe.strip().lower().endswith(_RECIPE_SUFFIXES) or os.path.isfile(recipe)))
    if not is_path:
        return parse_recipe_text(str(recipe))
    path = Path(recipe)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise NotFound(f"cannot open recipe file {path}: {error.strerror}") from error
    try:
        return parse_recipe_text(text)
    except InvalidArgument as error:
        raise InvalidArgument(f"{path}: {error.message}") from error
