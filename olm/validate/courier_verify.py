"""Verifies the bundle's ClusterServiceVersion and its CRD ownership with operator-courier.

operator-courier predates registry+v1 bundles: it reads the legacy "package" layout, a flat
folder of manifests plus a package file naming the channels and each channel's current CSV. So
the manifests are copied to a temporary folder and the package file is written from
bundle/metadata/annotations.yaml and the CSV's name. Warnings are printed; errors fail.

usage: python courier_verify.py BUNDLE_DIR
"""

import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import yaml

BUNDLE = "operators.operatorframework.io.bundle"


def package_file(bundle: pathlib.Path) -> dict:
    annotations = yaml.safe_load((bundle / "metadata/annotations.yaml").read_text())["annotations"]
    csvs = [
        doc
        for path in sorted((bundle / "manifests").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "ClusterServiceVersion"
    ]
    if len(csvs) != 1:
        raise SystemExit(f"{bundle}/manifests: expected one ClusterServiceVersion, found {len(csvs)}")
    current = csvs[0]["metadata"]["name"]
    channels = annotations[f"{BUNDLE}.channels.v1"].split(",")
    return {
        "packageName": annotations[f"{BUNDLE}.package.v1"],
        "channels": [{"name": channel.strip(), "currentCSV": current} for channel in channels],
        "defaultChannel": annotations[f"{BUNDLE}.channel.default.v1"],
    }


def main() -> int:
    bundle = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bundle")
    courier = pathlib.Path(sys.executable).with_name("operator-courier")
    with tempfile.TemporaryDirectory(prefix="legate-courier-") as tmp:
        flat = pathlib.Path(tmp) / "package"
        shutil.copytree(bundle / "manifests", flat)
        package = package_file(bundle)
        (flat / f"{package['packageName']}.package.yaml").write_text(yaml.safe_dump(package))
        report = pathlib.Path(tmp) / "report.json"
        # --ui_validate_io adds operatorhub.io's checks: provider, links, icon, categories,
        # capabilities, an alm-example per owned CRD.
        run = subprocess.run(
            [str(courier), "verify", "--ui_validate_io", "--validation-output", str(report), str(flat)],
            capture_output=True,
            text=True,
        )
        result = json.loads(report.read_text()) if report.exists() else {}
    for warning in result.get("warnings", []):
        print(f"WARN {bundle}: {warning}")
    for error in result.get("errors", []):
        print(f"ERROR {bundle}: {error}")
    if run.returncode != 0 or result.get("errors"):
        print(run.stdout + run.stderr, end="")
        print(f"operator-courier: {bundle} failed verification")
        return 1
    version = subprocess.run([str(courier), "--version"], capture_output=True, text=True).stdout.strip()
    print(f"operator-courier {version}: {bundle} verified ({len(result.get('warnings', []))} warnings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
