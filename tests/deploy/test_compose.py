"""Deployment files: docker-compose.yml, Dockerfile, .dockerignore and .env.example.

There is no Docker engine on the build machines, so these tests read the files the way Docker and
Compose do (YAML, `${VAR}` interpolation, .dockerignore patterns, Dockerfile instructions) and check
the rules a deployment depends on. The build-context test really builds the package wheel from what
Docker would send.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / ".env.example"

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
SECRETS_SET = {
    "POSTGRES_PASSWORD": "pw-for-tests",
    "GLIMPSE_API_KEYS": "client-key",
    "GLIMPSE_UI_API_KEY": "ui-key",
}

# ---------------------------------------------------------------------------------------------
# Compose interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}
# ---------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    """Compose would refuse the file: a required variable is unset or empty."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def interpolate(text: str, env: dict[str, str]) -> str:
    """Substitute variables the way Compose does (for the forms this project uses)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and missing:
            return arg
        if op in (":?", "?") and missing:
            raise MissingVariable(name, arg)
        return value or ""

    return _TOKEN.sub(substitute, text)


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def variable_uses(node: object) -> list[re.Match[str]]:
    """Every `${...}` expression in a parsed compose document."""
    return [m for s in _strings(node) for m in _TOKEN.finditer(s) if m.group("name")]


def interpolate_tree(node: object, env: dict[str, str]) -> object:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    return node


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def resolved(compose: dict) -> dict:
    """The compose file as Compose sees it with only the required secrets in .env."""
    return interpolate_tree(compose, dict(SECRETS_SET))


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping so tests and readers can index it"
    return {k: str(v) for k, v in env.items()}


def mounts_of(service: dict) -> list[dict]:
    """Volumes in long form: {type, source, target, read_only}."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append(entry)
            continue
        source, target, *mode = entry.split(":")
        kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
        mounts.append({"type": kind, "source": source, "target": target, "read_only": "ro" in mode})
    return mounts


def mount_at(service: dict, target: str) -> dict:
    found = [m for m in mounts_of(service) if m["target"] == target]
    assert len(found) == 1, f"expected one mount at {target}, found {found}"
    return found[0]


# ---------------------------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------------------------
CLUSTER = ("ray-head", "ray-worker", "ray-indexer")


def test_compose_runs_database_migration_api_ui_and_an_on_demand_indexer(services: dict) -> None:
    # ray-* are the `cluster` profile (their own tests are below).
    assert set(services) == {"postgres", "migrate", "api", "webui", "indexer", *CLUSTER}
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["indexer"]["profiles"] == ["indexer"], "the indexer only runs when asked for"
    assert services["indexer"]["restart"] == "no"
    assert services["migrate"]["restart"] == "no"
    for name in ("postgres", "api", "webui"):
        assert services[name]["restart"] == "unless-stopped", name


def test_long_running_services_have_healthchecks_on_their_real_endpoints(services: dict) -> None:
    pg = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in pg
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert f"127.0.0.1:{api_port}/healthz" in api_check
    ui_port = services["webui"]["command"][services["webui"]["command"].index("--port") + 1]
    assert f"127.0.0.1:{ui_port}/_stcore/health" in " ".join(services["webui"]["healthcheck"]["test"])


def test_services_start_only_after_what_they_need_is_ready(services: dict) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert conditions("migrate") == {"postgres": "service_healthy"}
    schema_ready = {"postgres": "service_healthy", "migrate": "service_completed_successfully"}
    assert conditions("api") == schema_ready
    assert conditions("indexer") == schema_ready
    assert conditions("webui") == {"api": "service_healthy"}


def test_schema_upgrade_runs_against_the_same_database_as_the_api(resolved: dict) -> None:
    services = resolved["services"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    url = env_of(services["api"])["GLIMPSE_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert SECRETS_SET["POSTGRES_PASSWORD"] in url
    for name in ("migrate", "indexer"):
        assert env_of(services[name])["GLIMPSE_DATABASE_URL"] == url, name


def test_api_and_indexer_share_the_library_models_and_media_paths(resolved: dict) -> None:
    api, indexer = resolved["services"]["api"], resolved["services"]["indexer"]
    for key in ("GLIMPSE_DATA_DIR", "HF_HOME", "GLIMPSE_MODEL", "GLIMPSE_PRETRAINED"):
        assert env_of(api)[key] == env_of(indexer)[key], key
    data, models = env_of(api)["GLIMPSE_DATA_DIR"], env_of(api)["HF_HOME"]
    for target in (data, models):
        api_mount, indexer_mount = mount_at(api, target), mount_at(indexer, target)
        assert api_mount["type"] == indexer_mount["type"] == "volume"
        assert api_mount["source"] == indexer_mount["source"]
        assert api_mount["source"] in resolved["volumes"]
    assert mount_at(api, data)["source"] != mount_at(api, models)["source"]
    # Paths stored by the indexer must resolve in the API too.
    assert mount_at(api, "/media")["source"] == mount_at(indexer, "/media")["source"]
    assert env_of(api)["GLIMPSE_MEDIA_ROOTS"] == "/media"


def test_indexer_reads_media_through_a_read_only_mount(services: dict) -> None:
    for name in ("indexer", "api"):
        media = mount_at(services[name], "/media")
        assert media["type"] == "bind" and media["read_only"] is True, name
    assert services["indexer"]["command"][:2] == ["index", "/media"]


def test_postgres_keeps_its_data_in_a_named_volume(compose: dict, services: dict) -> None:
    data = mount_at(services["postgres"], "/var/lib/postgresql/data")
    assert data["type"] == "volume" and data["source"] in compose["volumes"]
    used = {m["source"] for s in services.values() for m in mounts_of(s) if m["type"] == "volume"}
    assert used == set(compose["volumes"]), "every named volume is declared and used"


def test_indexer_reserves_an_nvidia_gpu_and_builds_the_gpu_image(services: dict) -> None:
    indexer = services["indexer"]
    devices = indexer["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "gpu" in indexer["build"]["args"]["GLIMPSE_EXTRAS"].split(",")
    assert "compute" in indexer["environment"]["NVIDIA_DRIVER_CAPABILITIES"].split(",")
    assert indexer["image"] != services["api"]["image"], "the CUDA image must not replace the CPU one"
    for name in ("migrate", "api", "webui"):
        assert "deploy" not in services[name], f"{name} must run on a host without a GPU"
        assert "gpu" not in services[name]["build"]["args"]["GLIMPSE_EXTRAS"], name
        assert services[name]["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu"), name


def test_published_ports_are_bound_to_localhost_by_default(services: dict, resolved: dict) -> None:
    published = {name: s.get("ports", []) for name, s in resolved["services"].items()}
    assert published["postgres"] == [], "the database is reachable only on the compose network"
    assert published["api"] and published["webui"]
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port}"
    exposed = interpolate(services["api"]["ports"][0], {**SECRETS_SET, "GLIMPSE_BIND": "0.0.0.0"})
    assert exposed == "0.0.0.0:8000:8000", "GLIMPSE_BIND opens the ports on purpose"


def test_secrets_have_no_default_values(compose: dict) -> None:
    secret_uses = [m for m in variable_uses(compose) if SECRET_NAME.search(m.group("name"))]
    assert {m.group("name") for m in secret_uses} == set(SECRETS_SET)
    for use in secret_uses:
        assert use.group("op") == ":?", f"{use.group(0)} must be required (${{VAR:?message}})"
    # A secret-named environment entry holds only references to required variables, no literal.
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                leftover = _TOKEN.sub("", value).replace(",", "")
                assert leftover == "", f"{name}.{key} contains a literal secret {leftover!r}"


@pytest.mark.parametrize("unset", sorted(SECRETS_SET))
def test_compose_refuses_to_start_when_a_secret_is_unset_or_empty(compose: dict, unset: str) -> None:
    for env in ({k: v for k, v in SECRETS_SET.items() if k != unset}, {**SECRETS_SET, unset: ""}):
        with pytest.raises(MissingVariable) as refused:
            interpolate_tree(compose, env)
        assert refused.value.name == unset
        assert ".env" in str(refused.value), "the message tells the operator where to set it"


def test_api_listens_on_all_interfaces_only_with_api_keys(services: dict, resolved: dict) -> None:
    api = services["api"]
    assert api["command"][:3] == ["serve", "--host", "0.0.0.0"]
    for name, service in services.items():
        assert "--insecure" not in (service.get("command") or []), name
    keys = env_of(resolved["services"]["api"])["GLIMPSE_API_KEYS"].split(",")
    ui_key = env_of(resolved["services"]["webui"])["GLIMPSE_API_KEY"]
    assert ui_key in keys and SECRETS_SET["GLIMPSE_API_KEYS"] in keys
    assert env_of(resolved["services"]["webui"])["GLIMPSE_API_URL"] == "http://api:8000"


def _env_example_names() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def test_every_compose_variable_is_documented_in_env_example(compose: dict) -> None:
    used = {m.group("name") for m in variable_uses(compose)}
    documented = _env_example_names()
    assert used - documented == set(), "document these in .env.example"
    assert documented - used == set(), ".env.example documents variables compose never reads"


def test_env_example_leaves_every_secret_blank() -> None:
    values = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))
    for name in SECRETS_SET:
        assert values.get(name) == "", f"{name} must appear uncommented and empty in .env.example"


# ---------------------------------------------------------------------------------------------
# Profile `cluster`: a Ray head, GPU workers and the indexer that drives them
# ---------------------------------------------------------------------------------------------
def _shell(service: dict) -> str:
    """The command line a service runs, entrypoint and command joined."""
    entrypoint, command = service.get("entrypoint") or [], service.get("command") or []
    return " ".join([*entrypoint, *command])


def test_the_cluster_runs_only_with_its_profile_on_one_image_for_every_node(services: dict) -> None:
    for name in CLUSTER:
        assert services[name]["profiles"] == ["cluster"], name
    # Ray needs the same Ray and Python versions on every node: one image, built once.
    images = {services[name]["image"] for name in CLUSTER}
    assert len(images) == 1 and images.isdisjoint({services["api"]["image"], services["indexer"]["image"]})
    builds = [services[name]["build"] for name in CLUSTER]
    assert all(b == builds[0] for b in builds)
    assert set(builds[0]["args"]["GLIMPSE_EXTRAS"].split(",")) == {"postgres", "gpu", "ray"}
    assert services["ray-head"]["restart"] == services["ray-worker"]["restart"] == "unless-stopped"
    assert services["ray-indexer"]["restart"] == "no", "the indexer is a batch job"
    assert "ray" in _pyproject()["project"]["optional-dependencies"], "the ray extra the image installs"


def test_the_head_coordinates_and_the_gpu_workers_and_indexer_join_it(services: dict) -> None:
    head = _shell(services["ray-head"])
    port = re.search(r"ray start --head --port=(\d+)", head).group(1)
    assert "--num-cpus=0" in head and "--num-gpus=0" in head, "the head does no work itself"
    assert f"localhost:{port}" in " ".join(services["ray-head"]["healthcheck"]["test"])
    worker = _shell(services["ray-worker"])
    assert f"--address=ray-head:{port}" in worker and "--block" in worker
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    # The indexer joins as a node without CPUs or GPUs (Ray Data does not run over Ray Client),
    # then runs glimpse on it, pointed at the same head.
    indexer = _shell(services["ray-indexer"])
    assert f"ray start --address=ray-head:{port} --num-cpus=0 --num-gpus=0" in indexer
    assert 'exec glimpse "$$@"' in indexer and services["ray-indexer"]["command"][:2] == ["index", "/media"]
    assert env_of(services["ray-indexer"])["GLIMPSE_RAY_ADDRESS"] == f"ray-head:{port}"
    for name in ("ray-worker", "ray-indexer"):
        assert services[name]["depends_on"]["ray-head"] == {"condition": "service_healthy"}, name
    assert services["ray-indexer"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "ports" not in services["ray-head"], "the cluster is reached on the compose network only"


def test_every_node_shares_the_clusters_token_and_sees_the_media_where_the_indexer_does(
    resolved: dict,
) -> None:
    services = resolved["services"]
    assert "ray get-auth-token --generate" in _shell(services["ray-head"])
    token_dirs = {name: mount_at(services[name], "/home/glimpse/.ray") for name in CLUSTER}
    assert {m["source"] for m in token_dirs.values()} == {"ray-auth"}
    assert all(m["type"] == "volume" for m in token_dirs.values())
    # Decode tasks open the paths the indexer planned: the same folder at the same place.
    for name in ("ray-worker", "ray-indexer"):
        media = mount_at(services[name], "/media")
        assert media == mount_at(services["api"], "/media") and media["read_only"] is True, name
        assert mount_at(services[name], "/models")["source"] == mount_at(services["api"], "/models")["source"]
    for name in ("ray-worker", "ray-indexer"):
        assert services[name]["shm_size"], f"{name}: Ray's object store needs shared memory"


def test_the_cluster_indexer_writes_the_library_the_api_serves(resolved: dict) -> None:
    api, indexer = resolved["services"]["api"], resolved["services"]["ray-indexer"]
    for key in ("GLIMPSE_DATA_DIR", "GLIMPSE_DATABASE_URL", "HF_HOME", "GLIMPSE_MODEL", "GLIMPSE_PRETRAINED"):
        assert env_of(api)[key] == env_of(indexer)[key], key
    data = env_of(api)["GLIMPSE_DATA_DIR"]
    assert mount_at(api, data)["source"] == mount_at(indexer, data)["source"]
    # Only the indexer writes the library: the Ray nodes get neither it nor the database.
    for name in ("ray-head", "ray-worker"):
        node = resolved["services"][name]
        assert "GLIMPSE_DATABASE_URL" not in env_of(node)
        assert all(m["target"] != data for m in mounts_of(node)), name


def test_the_image_prepares_the_token_folder_for_the_service_user() -> None:
    runs = " ".join(rest for kw, rest in final_stage() if kw == "RUN")
    chown = re.search(r"chown\s+\S+\s+([^&]+)", runs)
    assert chown and "/home/glimpse/.ray" in chown.group(1).split()


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            pending = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def env_instructions(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            env.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", rest))
    return env


def test_image_entrypoint_is_the_glimpse_cli() -> None:
    entrypoints = [rest for kw, rest in final_stage() if kw == "ENTRYPOINT"]
    assert entrypoints, "the final stage declares an ENTRYPOINT"
    assert json.loads(entrypoints[-1]) == ["glimpse"], "exec form, so signals reach glimpse"


def test_image_runs_as_a_non_root_user() -> None:
    stage = final_stage()
    users = [rest for kw, rest in stage if kw == "USER"]
    assert users, "the final stage switches away from root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    last_user = max(i for i, (kw, _) in enumerate(stage) if kw == "USER")
    assert all(kw != "RUN" for kw, _ in stage[last_user:]), "nothing runs as root after USER"
    creates_user = " ".join(rest for kw, rest in stage if kw == "RUN")
    assert re.search(rf"useradd\b.*\b{re.escape(user)}\b", creates_user), f"user {user} is created"


def test_image_volume_paths_match_compose_and_belong_to_the_user(resolved: dict) -> None:
    stage = final_stage()
    env = env_instructions(stage)
    api_env = env_of(resolved["services"]["api"])
    assert env["GLIMPSE_DATA_DIR"] == api_env["GLIMPSE_DATA_DIR"]
    assert env["HF_HOME"] == api_env["HF_HOME"]
    runs = " ".join(rest for kw, rest in stage if kw == "RUN")
    chown = re.search(r"chown\s+\S+\s+([^&]+)", runs)
    assert chown, "the final stage hands the volume mount points to the service user"
    # New named volumes copy the image folder's owner; a root-owned one would be unwritable.
    assert {env["GLIMPSE_DATA_DIR"], env["HF_HOME"]} <= set(chown.group(1).split())


def test_image_bakes_in_no_secrets() -> None:
    for keyword, rest in dockerfile_instructions():
        if keyword in ("ENV", "ARG", "LABEL"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", rest)
            assert not [n for n in names if SECRET_NAME.search(n)], f"{keyword} {rest}"
    assert all(kw != "COPY" or ".env" not in rest for kw, rest in dockerfile_instructions())


def test_compose_build_args_are_declared_in_the_dockerfile(services: dict) -> None:
    declared = {rest.split("=")[0] for kw, rest in dockerfile_instructions() if kw == "ARG"}
    for name, service in services.items():
        if "build" in service:
            assert set(service["build"]["args"]) <= declared, name


# ---------------------------------------------------------------------------------------------
# .dockerignore and the build context
# ---------------------------------------------------------------------------------------------
def _docker_glob(pattern: str) -> re.Pattern[str]:
    """Go filepath.Match plus Docker's `**`, anchored at the context root."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1].replace("[!", "[^"), end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, pattern) in file order, cleaned the way Docker reads them."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((exception, _docker_glob(pattern)))
    return rules


def is_ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for exception, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            ignored = not exception
    return ignored


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_dockerignore_keeps_secrets_local_state_and_media_out_of_the_image() -> None:
    rules = dockerignore_rules()
    for path in (
        ".env",
        ".env.production",
        ".git/HEAD",
        ".venv/bin/python",
        "glimpse-data/catalogue.db",
        "media/holiday/beach.jpg",
        "core/__pycache__/models.cpython-311.pyc",
        "deploy/tls.key",
    ):
        assert is_ignored(path, rules), path


def test_dockerignore_keeps_everything_the_package_build_reads() -> None:
    rules = dockerignore_rules()
    project = _pyproject()
    needed = ["pyproject.toml", project["project"]["readme"], "glimpse/__init__.py"]
    folders = package_folders()
    for folder in folders.values():
        needed += [f"{folder}/__init__.py", f"{folder}/module.py"]
    for package, globs in project["tool"]["setuptools"]["package-data"].items():
        top, _, rest = package.removeprefix("glimpse.").partition(".")
        folder = "/".join([folders[top], *rest.split(".")]) if rest else folders[top]
        needed += [f"{folder}/{g.replace('*', 'x')}" for g in globs]
    assert [p for p in needed if is_ignored(p, rules)] == []


def package_folders() -> dict[str, str]:
    """Sub-package -> the top-level folder its link in glimpse/ points at (core -> core, ...)."""
    links = {p.name: p for p in (REPO / "glimpse").iterdir() if p.is_symlink()}
    assert links, "glimpse/ links the design card's top-level folders"
    return {name: link.resolve().relative_to(REPO).as_posix() for name, link in links.items()}


def _copy_build_context(destination: Path) -> None:
    """Copy what `docker build .` would send, pruning ignored folders like Docker does."""
    rules = dockerignore_rules()
    can_prune = not any(exception for exception, _ in rules)
    for root, dirs, files in os.walk(REPO):
        rel_root = Path(root).relative_to(REPO).as_posix()
        prefix = "" if rel_root == "." else f"{rel_root}/"

        def rel(name: str, prefix: str = prefix) -> str:
            return prefix + name

        if can_prune:
            dirs[:] = [d for d in dirs if not is_ignored(rel(d), rules)]
        for name in dirs:  # Docker's COPY keeps symbolic links as links (glimpse/core -> ../core)
            link = Path(root) / name
            if link.is_symlink() and not is_ignored(rel(name), rules):
                (destination / rel(name)).parent.mkdir(parents=True, exist_ok=True)
                (destination / rel(name)).symlink_to(os.readlink(link))
        for name in files:
            if not is_ignored(rel(name), rules):
                target = destination / rel(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(root) / name, target)


def test_the_package_builds_from_the_docker_build_context(tmp_path: Path) -> None:
    project = _pyproject()
    if not (REPO / project["project"]["readme"]).exists():
        pytest.skip(f"{project['project']['readme']} (the package readme) is not written yet")
    context = tmp_path / "context"
    _copy_build_context(context)
    assert not (context / ".env").exists() and not (context / ".git").exists()
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package_data = project["tool"]["setuptools"]["package-data"]
    expected = set()
    for folder, _dirs, files in os.walk(REPO / "glimpse", followlinks=True):
        prefix = Path(folder).relative_to(REPO).as_posix()
        globs = package_data.get(prefix.replace("/", "."), [])
        expected |= {
            f"{prefix}/{name}"
            for name in files
            if name.endswith(".py") or any(fnmatch.fnmatch(name, g) for g in globs)
        }
    assert any(name.startswith("glimpse/core/weights/") for name in expected)
    assert expected - names == set(), "files the image would lack"


# ---------------------------------------------------------------------------------------------
# The commands the containers run exist in the CLI
# ---------------------------------------------------------------------------------------------
def _runs_glimpse(service: dict) -> bool:
    """Whether the command is glimpse's arguments: the image's entrypoint, or an entrypoint that
    ends by handing its arguments to glimpse (the cluster's indexer joins the cluster first)."""
    entrypoint = service.get("entrypoint")
    return entrypoint is None or 'exec glimpse "$$@"' in " ".join(entrypoint)


_COMMANDS = {
    name: svc["command"]
    for name, svc in yaml.safe_load(COMPOSE_FILE.read_text())["services"].items()
    if "command" in svc and _runs_glimpse(svc)
}


@pytest.mark.parametrize("service", sorted(_COMMANDS))
def test_container_commands_are_real_glimpse_subcommands(service: str) -> None:
    if importlib.util.find_spec("glimpse.cli") is None:
        pytest.skip("glimpse.cli is not written yet; the container commands cannot be checked")
    import typer

    from glimpse.cli import app  # an ImportError here is a real failure, not a skip

    args, command, path = list(_COMMANDS[service]), typer.main.get_command(app), ["glimpse"]
    # Duck-typed: recent typer vendors click, so its groups are not click.Group instances.
    while hasattr(command, "commands"):
        assert args and not args[0].startswith("-"), f"`{' '.join(path)}` needs a subcommand"
        word = args.pop(0)
        path.append(word)
        assert word in command.commands, f"`{' '.join(path)}` is not a glimpse command"
        command = command.commands[word]
    options = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=")[0] in options, f"`{' '.join(path)}` has no option {arg}"
