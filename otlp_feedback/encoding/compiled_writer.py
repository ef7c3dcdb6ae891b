"""A schema-compiled Avro binary writer for the subset of Avro our event schemas use.

fastavro resolves every ``["null", X]`` union at run time by trying each branch, which makes it
cost ~20 us for one of our records; a writer compiled once per schema into straight-line Python
(one ``if value is None`` per nullable field) costs a fraction of that. ``AvroEventSerializer``
compiles each schema with ``compile_record_writer`` at start-up and falls back to fastavro when
this raises ``UnsupportedSchema``.

Supported, and nothing else (anything else is refused at compile time):

- a top-level ``record`` whose fields are of the types below;
- ``string``, ``long``, ``double``, ``boolean``;
- ``long`` with ``logicalType: timestamp-micros``, given a ``datetime`` (or an int of micros);
- ``map`` and ``array`` of a supported type;
- two-branch unions with ``null`` first: ``["null", X]``.

The bytes are exactly what ``fastavro.schemaless_writer`` writes for the same record
(``tests/unit/test_compiled_writer.py`` proves it), including its treatment of a missing field
(the field's default, else null for a nullable field) and of naive datetimes (local time).
Values must have the Python types the schema names (a ``str`` for a string, an ``int`` for a
long, a ``float`` or ``int`` for a double, a ``bool`` for a boolean); where fastavro would
coerce something else (``"1.5"`` for a double, ``1`` for a boolean) this writer refuses it.

Thread-safety: a compiled writer is a pure function of its arguments.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

RecordWriter = Callable[[bytearray, Mapping[str, Any]], None]
"""Appends the Avro encoding of a record (a field-name -> value mapping) to the buffer."""

_PRIMITIVES = frozenset({"string", "long", "double", "boolean"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


class UnsupportedSchema(ValueError):
    """The schema uses an Avro construct this writer does not implement."""


# -- run-time helpers the generated code calls (the slow, rare paths stay out of line) ---------


def write_long(buf: bytearray, value: int) -> None:
    """Append ``value`` as a zig-zag varint. Raises ``OverflowError`` outside 64 bits."""
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise OverflowError(f"{value} does not fit an Avro long")
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)


def _expected(path: str, avro_type: str, value: object) -> TypeError:
    return TypeError(f"{path}: expected {avro_type}, got {type(value).__name__} {value!r:.60}")


def _as_string(value: object, path: str) -> str:
    if isinstance(value, str):
        return value
    raise _expected(path, "string", value)


def _as_long(value: object, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise _expected(path, "long", value)


def _as_double(value: object, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _expected(path, "double", value)


def _as_micros(value: object, path: str) -> int:
    """fastavro's ``prepare_timestamp_micros``: aware -> since epoch; naive -> local time."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return (value - _EPOCH) // _MICROSECOND
        return int(time.mktime(value.timetuple())) * 1_000_000 + value.microsecond
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise _expected(path, "timestamp (datetime or int micros)", value)


def _as_map(value: object, path: str) -> Mapping[Any, Any]:
    if isinstance(value, Mapping):
        return value
    raise _expected(path, "map", value)


def _as_array(value: object, path: str) -> Sequence[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        return value
    raise _expected(path, "array", value)


_HELPERS: dict[str, Any] = {
    "_write_long": write_long,
    "_pack_double": struct.Struct("<d").pack,
    "_expected": _expected,
    "_as_string": _as_string,
    "_as_long": _as_long,
    "_as_double": _as_double,
    "_as_micros": _as_micros,
    "_as_map": _as_map,
    "_as_array": _as_array,
    "_datetime": datetime,
    "_EPOCH": _EPOCH,
    "_MICROSECOND": _MICROSECOND,
}


# -- the compiler -------------------------------------------------------------------------------


class _Compiler:
    """Turns one record schema into the source of ``write(buf, d)``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def constant(self, value: Any) -> str:
        name = f"_C{len(self.constants)}"
        self.constants[name] = value
        return name

    def record(self, schema: Any) -> None:
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise UnsupportedSchema("the top level must be a record")
        self.emit(0, "def write(buf, d):")
        self.emit(1, "append = buf.append")
        for field in schema.get("fields", []):
            name = field["name"]
            ftype = field["type"]
            if "default" in field or _is_nullable(ftype):
                default = self.constant(field.get("default"))
                self.emit(1, f"v = d.get({name!r}, {default})")
            else:
                self.emit(1, f"v = d[{name!r}]")
            self.value(ftype, "v", 1, name, depth=0)
        self.emit(1, "return None")

    def value(self, schema: Any, var: str, indent: int, path: str, depth: int) -> None:
        """Emit code appending the encoding of local variable ``var`` of type ``schema``."""
        kind = _kind(schema)
        p = repr(path)
        if kind == "string":
            self.emit(indent, f"if type({var}) is not str: {var} = _as_string({var}, {p})")
            self.emit(indent, f"b = {var}.encode()")
            self.emit(indent, "n = len(b)")
            self.emit(indent, "if n < 64: append(n << 1)")
            self.emit(indent, "else: _write_long(buf, n)")
            self.emit(indent, "buf += b")
        elif kind in ("long", "timestamp-micros"):
            if kind == "timestamp-micros":
                self.emit(indent, f"if type({var}) is _datetime and {var}.tzinfo is not None:")
                self.emit(indent + 1, f"{var} = ({var} - _EPOCH) // _MICROSECOND")
                self.emit(indent, f"elif type({var}) is not int: {var} = _as_micros({var}, {p})")
            else:
                self.emit(indent, f"if type({var}) is not int: {var} = _as_long({var}, {p})")
            self.emit(indent, f"if -64 <= {var} < 64: append(({var} << 1) ^ ({var} >> 63))")
            self.emit(indent, f"else: _write_long(buf, {var})")
        elif kind == "double":
            self.emit(indent, f"if type({var}) is not float: {var} = _as_double({var}, {p})")
            self.emit(indent, f"buf += _pack_double({var})")
        elif kind == "boolean":
            self.emit(indent, f"if {var} is True: append(1)")
            self.emit(indent, f"elif {var} is False: append(0)")
            self.emit(indent, f"else: raise _expected({p}, 'boolean', {var})")
        elif kind == "nullable":
            self.emit(indent, f"if {var} is None:")
            self.emit(indent + 1, "append(0)")
            self.emit(indent, "else:")
            self.emit(indent + 1, "append(2)")
            self.value(schema[1], var, indent + 1, path, depth)
        elif kind == "map":
            key, item = f"k{depth}", f"x{depth}"
            self.emit(indent, f"if type({var}) is not dict: {var} = _as_map({var}, {p})")
            self.emit(indent, f"if {var}:")
            self._count(var, indent + 1)
            self.emit(indent + 1, f"for {key}, {item} in {var}.items():")
            self.value("string", key, indent + 2, f"{path} key", depth + 1)
            self.value(schema["values"], item, indent + 2, f"{path} value", depth + 1)
            self.emit(indent, "append(0)")
        elif kind == "array":
            item = f"x{depth}"
            self.emit(indent, f"if type({var}) is not list: {var} = _as_array({var}, {p})")
            self.emit(indent, f"if {var}:")
            self._count(var, indent + 1)
            self.emit(indent + 1, f"for {item} in {var}:")
            self.value(schema["items"], item, indent + 2, f"{path} item", depth + 1)
            self.emit(indent, "append(0)")
        else:  # pragma: no cover - _kind only returns the kinds above
            raise AssertionError(kind)

    def _count(self, var: str, indent: int) -> None:
        # One block holding every item, as fastavro writes it.
        self.emit(indent, f"n = len({var})")
        self.emit(indent, "if n < 64: append(n << 1)")
        self.emit(indent, "else: _write_long(buf, n)")


def _is_nullable(schema: Any) -> bool:
    return isinstance(schema, list) and "null" in schema


def _kind(schema: Any) -> str:
    """Classify a (non-record) schema, raising ``UnsupportedSchema`` for anything unknown."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        raise UnsupportedSchema(f"type {schema!r} is not supported")
    if isinstance(schema, list):
        if len(schema) == 2 and schema[0] == "null" and _kind(schema[1]) != "nullable":
            return "nullable"
        raise UnsupportedSchema(f'only ["null", X] unions are supported, not {schema!r}')
    if isinstance(schema, dict):
        avro_type = schema.get("type")
        logical = schema.get("logicalType")
        if logical is not None:
            if avro_type == "long" and logical == "timestamp-micros":
                return "timestamp-micros"
            raise UnsupportedSchema(f"logicalType {logical!r} on {avro_type!r} is not supported")
        if avro_type == "map":
            _kind(schema["values"])
            return "map"
        if avro_type == "array":
            _kind(schema["items"])
            return "array"
        if isinstance(avro_type, str) and avro_type in _PRIMITIVES:
            return avro_type
        raise UnsupportedSchema(f"type {avro_type!r} is not supported here")
    raise UnsupportedSchema(f"cannot read schema {schema!r}")


def compile_record_writer(schema: dict[str, Any]) -> RecordWriter:
    """Compile a record schema (its JSON definition) into a ``RecordWriter``.

    Raises ``UnsupportedSchema`` if the schema uses anything outside the subset in the module
    docstring. The writer raises ``TypeError``/``KeyError``/``OverflowError``/
    ``UnicodeEncodeError`` when a value does not fit; the serializer wraps those.
    """
    compiler = _Compiler()
    compiler.record(schema)
    source = "\n".join(compiler.lines)
    namespace: dict[str, Any] = {**_HELPERS, **compiler.constants}
    code = compile(source, f"<avro writer for {schema.get('name', 'record')}>", "exec")
    exec(code, namespace)
    writer: RecordWriter = namespace["write"]
    writer.__doc__ = source  # the generated code, for whoever debugs it
    return writer
