#!/usr/bin/env python3
"""Validates the sensor's OCSF and ECS output against the standards' own
definitions, with nothing taken from the encoder under test.

OCSF 1.4.0: the schema export that ocsf-json-schema bundles (the OCSF
server's export of 1.4.0), made into JSON Schema (draft 2020-12) per class
and set of profiles by that package and checked with jsonschema: unknown
attributes, missing required ones, types, enums and the at-least-one
constraints. On top of what JSON Schema says: a deprecated attribute is an
error, as is a profile the class does not take, an id whose caption
sibling disagrees with the schema, and a type_uid other than
class_uid * 100 + activity_id.

ECS: Elastic's field definitions of one release (--fields, JSON:
`{"version": ..., "fields": {flat name: definition}}`), the release the
document names in ecs.version. Every field of a document must be defined,
its value of the field's type and, where the field lists allowed values,
one of them; event.type must be one the event.category values expect;
required fields must be present. `sensor.*` is the sensor's custom
namespace and not ECS's to judge.

Usage:  formats.py ocsf FILE...
        formats.py ecs --fields FILE.json FILE...
FILEs hold one JSON document per line. Every error names the file, line,
record and field. Exits 1 on any error, or if no document was read.
"""
import argparse
import collections
import datetime
import ipaddress
import json
import pathlib
import re
import sys

OCSF_VERSION = "1.4.0"
# Enough to see what is wrong without burying it.
MAX_REPORTED = 200


class Report:
    def __init__(self):
        self.errors = 0
        self.documents = collections.Counter()

    def error(self, where, record, field, message):
        self.errors += 1
        if self.errors <= MAX_REPORTED:
            print(f"{where}: {record}: {field or '(document)'}: {message}")

    def finish(self, fmt):
        if self.errors > MAX_REPORTED:
            print(f"... and {self.errors - MAX_REPORTED} more errors")
        total = sum(self.documents.values())
        by = ", ".join(f"{k} {n}" for k, n in sorted(self.documents.items()))
        print(f"{fmt}: {total} documents, {self.errors} errors ({by})")
        if total == 0:
            print(f"{fmt}: no documents to validate")
            return 1
        return 1 if self.errors else 0


def documents(files, report):
    for name in files:
        with open(name, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{name}:{n}"
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as e:
                    report.error(where, "line", None, f"not JSON: {e}")
                    continue
                if not isinstance(doc, dict):
                    report.error(where, "line", None, "not a JSON object")
                    continue
                yield where, doc


def dotted(path):
    return ".".join(str(p) for p in path)


def short(value, limit=80):
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --- OCSF ---------------------------------------------------------------


def ocsf(files):
    from jsonschema import Draft202012Validator, ValidationError
    from jsonschema.validators import extend
    from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

    export = get_ocsf_schema(version=OCSF_VERSION)
    if export.get("version") != OCSF_VERSION:
        sys.exit(f"ocsf-json-schema bundles {export.get('version')}, not {OCSF_VERSION}")
    generator = OcsfJsonSchemaEmbedded(export)

    # JSON Schema only annotates `deprecated`; OCSF producers should not
    # emit what the release deprecates, so it fails here.
    def deprecated(validator, value, instance, schema):
        if value:
            yield ValidationError(f"deprecated in OCSF {OCSF_VERSION}")

    Validator = extend(Draft202012Validator, {"deprecated": deprecated})
    validators = {}
    report = Report()
    for where, doc in documents(files, report):
        uid = doc.get("class_uid")
        try:
            name = generator.lookup_class_name_from_uid(uid)
        except (ValueError, TypeError):
            report.error(where, f"class_uid {short(uid)}", "class_uid", "no such class")
            continue
        cls = export["classes"][name]
        # The record as a reader would find it: class, then the sensor's kind.
        unmapped = doc.get("unmapped") if isinstance(doc.get("unmapped"), dict) else {}
        kind = unmapped.get("kind", "?")
        record = f"{cls['caption']} ({uid}) of {kind}"
        report.documents[f"{cls['caption']} ({uid})"] += 1
        metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        profiles = metadata.get("profiles", [])
        if not isinstance(profiles, list):
            profiles = []
        for p in profiles:
            if p not in cls.get("profiles", []):
                message = f"{name} does not take the {p!r} profile"
                report.error(where, record, "metadata.profiles", message)
        if metadata.get("version") != OCSF_VERSION:
            message = f"{short(metadata.get('version'))}, not {OCSF_VERSION}"
            report.error(where, record, "metadata.version", message)
        key = (name, tuple(sorted(set(p for p in profiles if isinstance(p, str)))))
        if key not in validators:
            validators[key] = Validator(generator.get_class_schema(name, list(key[1])))
        for e in validators[key].iter_errors(doc):
            field, message = describe(e)
            report.error(where, record, field, message)
        activity = doc.get("activity_id")
        if isinstance(activity, int) and doc.get("type_uid") != uid * 100 + activity:
            message = f"{short(doc.get('type_uid'))}, not class_uid * 100 + activity_id"
            report.error(where, record, "type_uid", f"{message} = {uid * 100 + activity}")
        siblings(export, cls["attributes"], doc, "", where, record, report)
    return report.finish("ocsf")


def describe(error):
    """The field an error is about, and what is wrong with it, without
    dumping whole objects into the message."""
    path = dotted(error.absolute_path)
    join = lambda name: f"{path}.{name}" if path else name
    kind = error.validator
    if kind == "required":
        missing = [r for r in error.validator_value if r not in error.instance]
        return join(",".join(missing)), "required, missing"
    if kind == "additionalProperties":
        known = error.schema.get("properties", {})
        extra = sorted(k for k in error.instance if k not in known)
        return join(",".join(extra)), "not an attribute of this object (with these profiles)"
    if kind in ("anyOf", "oneOf") and all("required" in s for s in error.validator_value):
        names = [s["required"][0] for s in error.validator_value]
        count = "at least one" if kind == "anyOf" else "exactly one"
        return path, f"needs {count} of {', '.join(names)}"
    return path, error.message if len(error.message) < 200 else error.message[:200] + "..."


def siblings(export, attributes, value, path, where, record, report):
    """Each `_id` enum and its caption sibling must agree (Other, 99, may
    carry any caption); recurses into objects the schema knows."""
    if not isinstance(value, dict):
        return
    for name, v in value.items():
        spec = attributes.get(name)
        if spec is None:
            continue  # JSON Schema has reported it
        here = f"{path}.{name}" if path else name
        enum, sibling = spec.get("enum"), spec.get("sibling")
        if enum and sibling and sibling in value and str(v) in enum and str(v) != "99":
            want = enum[str(v)].get("caption")
            if value[sibling] != want:
                field = f"{path}.{sibling}" if path else sibling
                message = f"{short(value[sibling])}, but {here} {v} is {want!r}"
                report.error(where, record, field, message)
        if spec.get("type") == "object_t":
            obj = export["objects"].get(spec.get("object_type"), {}).get("attributes", {})
            items = v if isinstance(v, list) else [v]
            for i, item in enumerate(items):
                sub = f"{here}.{i}" if isinstance(v, list) else here
                siblings(export, obj, item, sub, where, record, report)


# --- ECS ----------------------------------------------------------------

STRING = {"keyword", "constant_keyword", "wildcard", "match_only_text", "text"}
INTEGER = {"long", "integer", "short", "byte", "unsigned_long"}
NUMBER = {"float", "scaled_float", "double", "half_float"}
# ECS types whose value is an object of its own (not more ECS fields).
OPAQUE = {"object", "flattened", "nested", "geo_point"}


def fits(ecs_type, value):
    """Whether a JSON value can be indexed as this ECS type (one value; an
    array of them is a field's array)."""
    if ecs_type in STRING:
        return isinstance(value, str)
    if ecs_type in INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if ecs_type in NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ecs_type == "boolean":
        return isinstance(value, bool)
    if ecs_type == "ip":
        try:
            ipaddress.ip_address(value)
            return True
        except (ValueError, TypeError):
            return False
    if ecs_type == "date":
        if isinstance(value, str):
            return rfc3339(value)
        return isinstance(value, int) and not isinstance(value, bool)
    if ecs_type in ("object", "flattened", "nested"):
        return isinstance(value, dict)
    if ecs_type == "geo_point":
        return isinstance(value, (dict, str))
    return False


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def rfc3339(value):
    """RFC 3339 with any number of fraction digits (the sensor writes
    nanoseconds; Python's own parser takes at most six), a real date."""
    if not RFC3339.fullmatch(value):
        return False
    try:
        datetime.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
        return True
    except ValueError:
        return False


def leaves(value, prefix, opaque):
    """(flat name, value) of each ECS field in a document: objects are
    descended into unless the field there is itself an object type."""
    if isinstance(value, dict) and prefix not in opaque:
        for k, v in value.items():
            yield from leaves(v, f"{prefix}.{k}" if prefix else k, opaque)
    else:
        yield prefix, value


def ecs(files, definitions):
    data = json.loads(pathlib.Path(definitions).read_text())
    version, fields = data["version"], data["fields"]
    opaque = {name for name, f in fields.items() if f.get("type") in OPAQUE}
    required = {name for name, f in fields.items() if f.get("required")}
    categories = {
        a["name"]: set(a.get("expected_event_types", []))
        for a in fields["event.category"]["allowed_values"]
    }
    report = Report()
    for where, doc in documents(files, report):
        event = doc.get("event") if isinstance(doc.get("event"), dict) else {}
        record = f"{event.get('kind', '?')} {event.get('action', '?')}"
        report.documents[f"{event.get('kind', '?')}/{event.get('dataset', '?')}"] += 1
        claimed = doc.get("ecs", {}).get("version") if isinstance(doc.get("ecs"), dict) else None
        if claimed != version:
            message = f"{short(claimed)}, validated against {version}"
            report.error(where, record, "ecs.version", message)
        present = set()
        for name, value in leaves(doc, "", opaque):
            present.add(name)
            if name == "sensor" or name.startswith("sensor."):
                continue
            spec = fields.get(name)
            if spec is None:
                report.error(where, record, name, f"not a field of ECS {version}")
                continue
            values = value if isinstance(value, list) and spec["type"] != "nested" else [value]
            for v in values:
                if not fits(spec["type"], v):
                    report.error(where, record, name, f"{short(v)} is not of type {spec['type']}")
            allowed = {a["name"] for a in spec.get("allowed_values", [])}
            for v in values if allowed else []:
                if v not in allowed:
                    message = f"{short(v)} is not one of its allowed values"
                    report.error(where, record, name, message)
            if name == "event.type":
                cats = event.get("category", [])
                cats = cats if isinstance(cats, list) else [cats]
                expected = set().union(*(categories.get(c, set()) for c in cats))
                for v in values:
                    if v not in expected:
                        message = f"{short(v)} is not a type event.category {short(cats)} expects"
                        report.error(where, record, name, message)
        for name in sorted(required - present):
            report.error(where, record, name, "required, missing")
    print(f"ecs: field definitions of ECS {version}")
    return report.finish("ecs")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="format", required=True)
    o = sub.add_parser("ocsf")
    o.add_argument("files", nargs="+")
    e = sub.add_parser("ecs")
    e.add_argument("--fields", required=True, help="ECS field definitions (JSON)")
    e.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.format == "ocsf":
        return ocsf(args.files)
    return ecs(args.files, args.fields)


if __name__ == "__main__":
    sys.exit(main())
