"""Validates every built-in Kubernetes object under the given folders with kubernetes-validate,
in strict mode (unknown fields are errors), against each Kubernetes version given.

Unlike the `kubernetes-validate` command, which only warns when it has no schema for a kind, this
fails on any object it cannot check, except those of the API groups listed in OWN_GROUPS (our
CRDs' kinds, OLM's ClusterServiceVersion, kustomize's files): a typo in a built-in apiVersion, or
an API removed from Kubernetes, must not pass as "unknown kind".

usage: python kube_validate.py [-k VERSION]... DIR...
"""

import argparse
import pathlib
import sys

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

# API groups without a schema in kubernetes-validate, skipped on purpose.
OWN_GROUPS = {
    "legate.dev",  # our CRDs' kinds (the loader checks them: `make validate` runs its test)
    "getambassador.io",
    "operators.coreos.com",  # the ClusterServiceVersion (operator-courier checks it)
    "kustomize.config.k8s.io",  # kustomization.yaml
}


# Files that are YAML but not Kubernetes objects.
NOT_OBJECTS = {"bundle/metadata/annotations.yaml"}


def yaml_files(folders):
    for folder in folders:
        for path in sorted(pathlib.Path(folder).rglob("*")):
            hidden = any(part.startswith(".") for part in path.parts)
            if path.as_posix() in NOT_OBJECTS:
                continue
            if path.is_file() and path.suffix in (".yaml", ".yml") and not hidden:
                yield path


def describe(path, index, obj):
    if not isinstance(obj, dict):
        return f"{path}: document {index}"
    kind = obj.get("kind", "?")
    name = (obj.get("metadata") or {}).get("name", "?")
    return f"{path}: document {index} ({kind} {name})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", "--kubernetes-version", action="append", required=True)
    parser.add_argument("folders", nargs="+")
    args = parser.parse_args()

    valid = invalid = skipped = 0
    for path in yaml_files(args.folders):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as e:
            print(f"ERROR {path}: not valid YAML: {e}")
            invalid += 1
            continue
        for index, obj in enumerate(documents, start=1):
            if not obj:
                continue
            where = describe(path, index, obj)
            if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
                print(f"ERROR {where}: not a Kubernetes object (apiVersion and kind are required)")
                invalid += 1
                continue
            api_version = obj.get("apiVersion", "")
            group = api_version.rpartition("/")[0]
            if group in OWN_GROUPS:
                skipped += 1
                continue
            ok = True
            for version in args.kubernetes_version:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except ValidationError as e:
                    field = ".".join(str(p) for p in e.path) or "(root)"
                    print(f"ERROR {where}: Kubernetes {version}: {field}: {e.message}")
                    ok = False
                except SchemaNotFoundError:
                    print(f"ERROR {where}: Kubernetes {version} has no {api_version} {obj.get('kind')}")
                    ok = False
            if ok:
                valid += 1
            else:
                invalid += 1

    versions = ", ".join(args.kubernetes_version)
    print(
        f"kubernetes-validate {kubernetes_validate.__version__} (strict, Kubernetes {versions}): "
        f"{valid} objects valid, {invalid} invalid, {skipped} of our own kinds skipped"
    )
    return 1 if invalid or not valid else 0


if __name__ == "__main__":
    sys.exit(main())
