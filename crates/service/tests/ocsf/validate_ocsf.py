"""Validates OCSF events against a released OCSF schema, with the Windows extension.

The schema is the OCSF server's export of the release that the PyPI package ocsf-json-schema
ships; it gives a JSON Schema (draft 2020-12) per class and profile set, which `jsonschema`
checks (required attributes, types, enums, unknown attributes, the `at_least_one` constraints).
On top of that this script checks what a JSON Schema cannot say and the OCSF server's validator
does, reading the rules from the same schema data:

- `metadata.version` and every extension's version are the release validated against;
- `type_uid` is `class_uid` * 100 + `activity_id`, and activity Other (99) names its activity;
- `disposition_id` is one the schema's description of the event's `action_id` lists as conforming;
- no empty identifying text (process names, paths), no process id 0;
- every ATT&CK tactic has its name and uid;
- a rename keeps both names (`prev_reg_key`, `file_result`).

Usage: validate_ocsf.py VERSION FILE...   (.jsonl: one event a line; .snap: an insta golden
file whose body is one JSON event; .json: one event)
"""

import json
import re
import sys

import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema, get_packaged_versions


def events_of(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".snap"):
        # insta: a front matter between two `---` lines, then the value.
        parts = text.split("\n---\n", 1)
        if len(parts) != 2:
            raise ValueError(f"{path}: not an insta snapshot")
        return [(f"{path}", json.loads(parts[1]))]
    if path.endswith(".jsonl"):
        return [
            (f"{path}:{n}", json.loads(line))
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
    return [(path, json.loads(text))]


class Checker:
    def __init__(self, version):
        if version not in get_packaged_versions():
            raise SystemExit(f"OCSF {version} is not a release ocsf-json-schema ships")
        self.version = version
        self.raw = get_ocsf_schema(version=version)
        self.schema = OcsfJsonSchemaEmbedded(self.raw)
        self.validators = {}
        # By uid, with the key the export files it under (`win/registry_key_activity` for an
        # extension's class, which is also the name the JSON Schema generator looks it up by).
        self.keys = {c["uid"]: key for key, c in self.raw["classes"].items()}
        self.classes = {c["uid"]: c for c in self.raw["classes"].values()}

    def validator(self, class_uid, profiles):
        key = (class_uid, tuple(sorted(profiles)))
        if key not in self.validators:
            schema = self.schema.get_class_schema(self.keys[class_uid], profiles=list(profiles))
            self.validators[key] = jsonschema.Draft202012Validator(schema)
        return self.validators[key]

    def conforming_dispositions(self, cls, action_id):
        """The dispositions the schema's description of `action_id` lists for it, by caption."""
        enum = cls["attributes"].get("action_id", {}).get("enum", {})
        text = enum.get(str(action_id), {}).get("description", "")
        return set(re.findall(r"'([^']+)'", text))

    def check(self, ev):
        problems = []
        class_uid = ev.get("class_uid")
        cls = self.classes.get(class_uid)
        if cls is None:
            return [f"class_uid {class_uid!r} is not a class of OCSF {self.version}"]
        profiles = ev.get("metadata", {}).get("profiles", [])
        for err in self.validator(class_uid, profiles).iter_errors(ev):
            where = "/".join(str(p) for p in err.absolute_path) or "(event)"
            problems.append(f"schema: {where}: {err.message}")

        meta = ev.get("metadata", {})
        if meta.get("version") != self.version:
            problems.append(f"metadata.version {meta.get('version')!r} is not {self.version}")
        for ext in meta.get("extensions", []):
            if ext.get("version") != self.version:
                problems.append(
                    f"extension {ext.get('name')!r} version {ext.get('version')!r} "
                    f"is not {self.version}"
                )
        activity = ev.get("activity_id")
        if ev.get("type_uid") != class_uid * 100 + (activity or 0):
            problems.append(f"type_uid {ev.get('type_uid')} is not class_uid*100+activity_id")
        if activity == 99 and not ev.get("activity_name"):
            problems.append("activity Other (99) without activity_name")

        action = ev.get("action_id")
        disposition = ev.get("disposition_id")
        if action not in (None, 0, 99) and disposition is not None:
            captions = cls["attributes"].get("disposition_id", {}).get("enum", {})
            caption = captions.get(str(disposition), {}).get("caption")
            allowed = self.conforming_dispositions(cls, action)
            if caption not in allowed:
                problems.append(
                    f"disposition {disposition} ({caption}) does not conform to action "
                    f"{action}: the schema lists {sorted(allowed)}"
                )

        process = ev.get("actor", {}).get("process")
        if process is not None:
            if process.get("pid") in (None, 0):
                problems.append("actor.process without a process id")
            if "name" in process and not process["name"]:
                problems.append("actor.process.name is empty")
        for path in (
            ("reg_key", "path"),
            ("prev_reg_key", "path"),
            ("reg_value", "path"),
            ("file", "path"),
            ("file", "name"),
            ("file_result", "path"),
            ("file_result", "name"),
        ):
            obj = ev.get(path[0])
            if obj is not None and not obj.get(path[1]):
                problems.append(f"{'.'.join(path)} is empty")
        for n, attack in enumerate(ev.get("attacks", [])):
            tactic = attack.get("tactic")
            if tactic is not None and not (tactic.get("uid") and tactic.get("name")):
                problems.append(f"attacks[{n}].tactic lacks its uid or name")
        if class_uid == 201001 and activity == 5 and "prev_reg_key" not in ev:
            problems.append("a key rename without prev_reg_key")
        if class_uid == 1001 and activity == 5 and "file_result" not in ev:
            problems.append("a file rename without file_result")
        return problems


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    checker = Checker(argv[1])
    checked = failed = 0
    by_class = {}
    for path in argv[2:]:
        events = events_of(path)
        if not events:
            print(f"FAIL {path}: no events", file=sys.stderr)
            failed += 1
        for where, ev in events:
            checked += 1
            by_class[ev.get("class_uid")] = by_class.get(ev.get("class_uid"), 0) + 1
            problems = checker.check(ev)
            if problems:
                failed += 1
                for p in problems:
                    print(f"FAIL {where}: {p}")
    print(
        f"checked {checked} events from {len(argv) - 2} files against OCSF {checker.version} "
        f"(by class: {dict(sorted(by_class.items()))}): {checked - failed} valid, {failed} failed"
    )
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
