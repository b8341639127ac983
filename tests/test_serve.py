"""`cmrqc serve` / `cmrqc hub`: finding the shipped files, the Voilà command line, the hub config."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from cmrqc_widgets.cli import serving
from cmrqc_widgets.cli.serving import prepare_hub, prepare_serve, register
from cmrqc_widgets.errors import AuthError, CmrqcError, InvalidNameError
from cmrqc_widgets.serve.voila import (
    find_notebook,
    hub_environment,
    serve_environment,
    shipped_dir,
    supports_preheat,
    voila_arguments,
    voila_settings,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "voila_config"


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse a `cmrqc` command line made only of our subcommands."""
    parser = argparse.ArgumentParser(prog="cmrqc")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def fake_package(tmp_path: Path, layout: str) -> Path:
    """A package folder laid out like an installed wheel or a source checkout; returns the package dir."""
    package = tmp_path / layout / "cmrqc_widgets"
    package.mkdir(parents=True)
    base = package / "_shipped" if layout == "wheel" else package.parent
    for name in ("notebooks", "voila_config"):
        (base / name).mkdir(parents=True)
    (base / "notebooks" / "review.ipynb").write_text("{}")
    (base / "voila_config" / "voila.json").write_text(json.dumps({"VoilaConfiguration": {"theme": layout}}))
    return package


@pytest.mark.parametrize("layout", ["wheel", "checkout"])
def test_shipped_files_found_in_both_layouts(tmp_path, layout):
    """The notebook and voila_config are found in a wheel's _shipped/ and in a source checkout."""
    package = fake_package(tmp_path, layout)
    base = package / "_shipped" if layout == "wheel" else package.parent
    assert shipped_dir("notebooks", package) == base / "notebooks"
    assert find_notebook(package) == base / "notebooks" / "review.ipynb"
    assert voila_settings(shipped_dir("voila_config", package)) == {"VoilaConfiguration": {"theme": layout}}


def test_wheel_layout_wins_over_checkout(tmp_path):
    """When both exist (a wheel installed inside a checkout), the package's own copy is used."""
    package = fake_package(tmp_path, "wheel")
    (package.parent / "notebooks").mkdir()
    assert shipped_dir("notebooks", package) == package / "_shipped" / "notebooks"


def test_missing_shipped_files_named(tmp_path):
    """A broken installation says which folder is missing and where it looked."""
    package = tmp_path / "cmrqc_widgets"
    package.mkdir()
    with pytest.raises(CmrqcError, match=r"'notebooks' is missing.*_shipped"):
        shipped_dir("notebooks", package)
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(CmrqcError, match=r"review\.ipynb is missing"):
        find_notebook(package)


def test_this_checkout_has_the_shipped_folders():
    """In this source checkout the files resolve to the repository's voila_config and notebooks."""
    assert shipped_dir("voila_config") == CONFIG
    assert shipped_dir("notebooks") == REPO / "notebooks"


def test_voila_arguments_carry_our_settings(tmp_path):
    """The Voilà command line hides sources, uses the offline template, preheats and culls kernels."""
    argv = voila_arguments(
        tmp_path / "review.ipynb", port=9123, ip="127.0.0.1", open_browser=False, preheat=True
    )
    assert argv[1:4] == ["-m", "cmrqc_widgets.serve.app", str(tmp_path / "review.ipynb")]
    for flag in [
        "--port=9123",
        "--Voila.ip=127.0.0.1",
        "--no-browser",
        "--VoilaConfiguration.strip_sources=True",
        "--VoilaConfiguration.template=cmrqc",
        "--VoilaConfiguration.preheat_kernel=True",
        "--VoilaConfiguration.default_pool_size=1",
        "--MappingKernelManager.cull_interval=30",
        "--MappingKernelManager.cull_idle_timeout=600",
    ]:
        assert flag in argv
    assert "--no-browser" not in voila_arguments("nb.ipynb", open_browser=True)


def test_preheat_only_for_notebooks_that_wait_for_the_request(tmp_path):
    """A notebook that builds its screen before the request would show stale decisions: no preheat."""
    waits = tmp_path / "waits.ipynb"
    waits.write_text('{"cells": [{"source": "wait_for_request()\\nReviewWidget()"}]}')
    eager = tmp_path / "eager.ipynb"
    eager.write_text('{"cells": [{"source": "ReviewWidget()"}]}')
    assert supports_preheat(waits) and not supports_preheat(eager)
    assert not supports_preheat(tmp_path / "missing.ipynb")
    assert "--VoilaConfiguration.preheat_kernel=True" in voila_arguments(waits)
    assert "--VoilaConfiguration.preheat_kernel=False" in voila_arguments(eager)
    assert "--VoilaConfiguration.preheat_kernel=False" in voila_arguments(waits, preheat=False)


def test_every_shipped_setting_reaches_the_command_line():
    """Each entry of voila.json appears as an explicit flag."""
    argv = voila_arguments("review.ipynb")
    for section, values in voila_settings().items():
        for name in values:
            assert any(a.startswith(f"--{section}.{name}=") for a in argv), (section, name)


def test_template_needs_no_internet():
    """The cmrqc template extends Voilà's lab template and links nothing outside the server."""
    template = CONFIG / "voila" / "templates" / "cmrqc"
    assert json.loads((template / "conf.json").read_text())["base_template"] == "lab"
    text = (template / "index.html.j2").read_text()
    assert "voila/templates/lab/index.html.j2" in text
    assert "http://" not in text and "https://" not in text


def test_voila_finds_the_template():
    """Voilà's own template lookup finds cmrqc on JUPYTER_PATH, with lab and base beneath it."""
    from jupyter_core.paths import jupyter_path
    from voila.paths import collect_template_paths

    paths = collect_template_paths(["voila", "nbconvert"], "cmrqc", root_dirs=[str(CONFIG), *jupyter_path()])
    assert paths[0] == str(CONFIG / "voila" / "templates" / "cmrqc")
    assert any(p.endswith(os.path.join("voila", "templates", "lab")) for p in paths)


def test_serve_environment_sets_reviewer_and_root(tmp_path):
    """The server (so every kernel) gets CMRQC_ROOT/CMRQC_USER; an inherited JUPYTERHUB_USER is dropped."""
    base = {"JUPYTERHUB_USER": "mallory", "JUPYTER_PATH": "/elsewhere", "PATH": "/usr/bin"}
    env = serve_environment(tmp_path, "alice", CONFIG, base=base)
    assert env["CMRQC_ROOT"] == str(tmp_path)
    assert env["CMRQC_USER"] == "alice"
    assert "JUPYTERHUB_USER" not in env
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(CONFIG), "/elsewhere"]
    assert env["PATH"] == "/usr/bin"
    assert base["JUPYTERHUB_USER"] == "mallory"


def test_prepare_serve_resolves_root_user_and_port(tmp_path, monkeypatch):
    """`cmrqc serve --root --user --port --ip --no-browser` turns into the Voilà command and environment."""
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    args = parse(["serve", "--root", str(tmp_path), "--user", "bob", "--port", "9001", "--no-browser"])
    argv, env = prepare_serve(args)
    assert argv[3] == str(REPO / "notebooks" / "review.ipynb")
    assert "--port=9001" in argv and "--no-browser" in argv and "--Voila.ip=127.0.0.1" in argv
    assert env["CMRQC_ROOT"] == str(tmp_path.resolve()) and env["CMRQC_USER"] == "bob"
    assert not (tmp_path / "users").exists()


def test_demo_creates_the_cohort_once(tmp_path, monkeypatch):
    """--demo writes the demo cohort and the reviewer's demo.json if missing, and leaves it alone after."""
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    args = parse(["serve", "--demo", "--root", str(tmp_path), "--user", "alice", "--no-browser"])
    prepare_serve(args)
    dataset = tmp_path / "users" / "alice" / "demo.json"
    patients = json.loads(dataset.read_text())
    assert len(patients) >= 5
    assert all(Path(p).is_dir() for p in patients)
    dataset.write_text(json.dumps({next(iter(patients)): {"ED_Comments": "reject:kept", "ES_Comments": ""}}))
    prepare_serve(args)
    assert "reject:kept" in dataset.read_text()


@pytest.mark.parametrize("user", ["../alice", "a/b", ".hidden", "x" * 65])
def test_hostile_user_refused(tmp_path, user):
    """A hostile --user is refused before anything is created."""
    args = parse(["serve", "--demo", "--root", str(tmp_path), "--user", user])
    with pytest.raises(InvalidNameError, match="not allowed"):
        prepare_serve(args)
    assert list(tmp_path.iterdir()) == []


def test_serve_command_runs_voila(tmp_path, monkeypatch):
    """serve_command runs the prepared Voilà command and returns its exit code."""
    calls = []
    monkeypatch.setattr(serving, "_run", lambda argv, env, cwd=None: calls.append((argv, env)) or 3)
    args = parse(["serve", "--root", str(tmp_path), "--user", "carol", "--no-browser"])
    assert args.func(args) == 3
    (argv, env), = calls
    assert argv[1:3] == ["-m", "cmrqc_widgets.serve.app"] and env["CMRQC_USER"] == "carol"


def test_hub_arguments_and_environment(tmp_path, monkeypatch):
    """`cmrqc hub` runs JupyterHub on our config, trial spawner, state folder private."""
    monkeypatch.setattr(serving.shutil, "which", lambda name: "/usr/bin/" + name)
    args = parse(["hub", "--root", str(tmp_path), "--port", "8123"])
    argv, env, state = prepare_hub(args)
    assert argv[1:] == ["-m", "jupyterhub", "-f", str(CONFIG / "jupyterhub_config.py")]
    assert env["CMRQC_HUB_PORT"] == "8123" and env["CMRQC_HUB_IP"] == "127.0.0.1"
    assert env["CMRQC_HUB_SPAWNER"] == "simple" and env["CMRQC_ROOT"] == str(tmp_path.resolve())
    assert state == tmp_path.resolve() / ".hub"
    assert (state.stat().st_mode & 0o777) == 0o700


def test_hub_refuses_plaintext_users(tmp_path, monkeypatch):
    """`cmrqc hub` on a legacy plaintext users.json stops with the migrate hint."""
    monkeypatch.setattr(serving.shutil, "which", lambda name: "/usr/bin/" + name)
    (tmp_path / "users.json").write_text(json.dumps({"alice": "password"}))
    with pytest.raises(AuthError, match="cmrqc user migrate"):
        prepare_hub(parse(["hub", "--root", str(tmp_path)]))


def test_hub_needs_the_proxy(tmp_path, monkeypatch):
    """Without configurable-http-proxy on PATH, `cmrqc hub` says how to install it."""
    monkeypatch.setattr(serving.shutil, "which", lambda name: None)
    with pytest.raises(CmrqcError, match="npm install -g configurable-http-proxy"):
        prepare_hub(parse(["hub", "--root", str(tmp_path)]))


def load_hub_config(env: dict[str, str], monkeypatch) -> object:
    """Load voila_config/jupyterhub_config.py the way JupyterHub does, with ``env`` set."""
    from traitlets.config.loader import PyFileConfigLoader

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return PyFileConfigLoader("jupyterhub_config.py", path=str(CONFIG)).load_config()


def test_hub_config_trial(tmp_path, monkeypatch):
    """The hub config binds to 127.0.0.1, logs in with users.json for 3 days, runs the trial spawner."""
    pytest.importorskip("jupyterhub")
    env = hub_environment(tmp_path, port=8123, state=tmp_path / "state", base={})
    c = load_hub_config(env, monkeypatch)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8123"
    assert c.JupyterHub.hub_bind_url.startswith("http://127.0.0.1:")
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert c.JupyterHub.cookie_max_age_days == 3
    assert c.JupyterHub.authenticator_class == "cmrqc_widgets.serve.hub.CMRQCAuthenticator"
    assert c.CMRQCAuthenticator.data_root == str(tmp_path)
    assert c.Spawner.environment["CMRQC_ROOT"] == str(tmp_path)
    assert c.JupyterHub.spawner_class == "cmrqc_widgets.serve.spawner.TrialSpawner"
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'state' / 'jupyterhub.sqlite'}"
    assert "args" not in c.Spawner  # no --allow-root, even as root
    culler = c.JupyterHub.services[0]["command"]
    assert Path(culler[0]).is_absolute() and "--max-age=43200" in culler


def test_hub_config_production_defaults(tmp_path, monkeypatch):
    """Without CMRQC_HUB_SPAWNER the config uses real system users (ReviewerSpawner)."""
    pytest.importorskip("jupyterhub")
    monkeypatch.delenv("CMRQC_HUB_SPAWNER", raising=False)
    monkeypatch.delenv("CMRQC_HUB_IP", raising=False)
    c = load_hub_config({"CMRQC_ROOT": str(tmp_path), "CMRQC_HUB_STATE": str(tmp_path / "s")}, monkeypatch)
    assert c.JupyterHub.spawner_class == "cmrqc_widgets.serve.spawner.ReviewerSpawner"
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert "args" not in c.Spawner


def test_reviewer_command_is_standalone_voila_behind_the_hub_login():
    """A reviewer's server is jupyter-standaloneproxy + standalone Voilà, by absolute paths."""
    from cmrqc_widgets.serve.voila import reviewer_command

    argv = reviewer_command("/user/alice/")
    separator = argv.index("--")
    proxy, voila = argv[:separator], argv[separator + 1 :]
    assert Path(proxy[0]).name == "jupyter-standaloneproxy" and Path(proxy[0]).is_absolute()
    assert "--activity-interval=0" in proxy  # its pings would keep an idle server alive for ever
    assert Path(voila[0]).is_absolute() and voila[1:3] == ["-m", "cmrqc_widgets.serve.app"]  # Voilà, gzipped
    assert voila[3] == str(find_notebook())
    assert "--unix-socket=True" in proxy and "--CachedVoila.unix_socket={unix_socket}" in voila
    assert not any(a.startswith(("--port", "--Voila.ip")) for a in voila)  # no TCP port at all
    assert "--Voila.base_url=/user/alice/" in voila
    assert "--VoilaConfiguration.file_allowlist=[]" in voila
    assert "--VoilaConfiguration.preheat_kernel=False" in voila
    assert not any("allow-root" in a or "singleuser" in a for a in argv)


def test_spawner_refuses_root(monkeypatch):
    """A reviewer's server that would run as root is refused before anything starts."""
    pytest.importorskip("jupyterhub")
    import asyncio
    from types import SimpleNamespace

    from cmrqc_widgets.serve import spawner as spawner_module

    started = []

    async def fake_start(self):
        started.append(self.cmd)
        return ("127.0.0.1", 1)

    monkeypatch.setattr(spawner_module.LocalProcessSpawner, "start", fake_start)
    server = SimpleNamespace(base_url="/user/alice/")

    def make(cls, name):
        spawner = cls(user=SimpleNamespace(name=name, url=f"/user/{name}/"))
        spawner._server = server
        return spawner

    trial = make(spawner_module.TrialSpawner, "alice")
    monkeypatch.setattr(spawner_module.os, "geteuid", lambda: 0)
    with pytest.raises(CmrqcError, match="would run as root"):
        asyncio.run(trial.start())
    assert started == []
    monkeypatch.setattr(spawner_module.os, "geteuid", lambda: 1000)
    asyncio.run(trial.start())
    trial._remove_scratch()  # the stub started nothing; its scratch folder goes
    assert started and "--Voila.base_url=/user/alice/" in started[0]
    # Production: the reviewer's system account decides; the account "root" is uid 0.
    with pytest.raises(CmrqcError, match="would run as root"):
        asyncio.run(make(spawner_module.ReviewerSpawner, "root").start())
    assert len(started) == 1


def test_z2jh_values_lint():
    """z2jh-values.yaml parses and sets the image, shared volume, dashboard URL and our authenticator."""
    yaml = pytest.importorskip("yaml")
    values = yaml.safe_load((CONFIG / "z2jh-values.yaml").read_text())
    single = values["singleuser"]
    assert single["image"]["name"] and single["image"]["tag"]
    assert "defaultUrl" not in single  # /user/<name>/ is the dashboard
    assert single["networkPolicy"]["enabled"] is True
    assert values["cull"]["maxAge"] > values["cull"]["timeout"] > 0
    assert single["extraEnv"]["CMRQC_ROOT"] == "/srv/cmrqc"
    claims = {v["persistentVolumeClaim"]["claimName"] for v in single["storage"]["extraVolumes"]}
    assert claims == {"cmrqc-data"}
    mounts = {m["mountPath"]: m for m in single["storage"]["extraVolumeMounts"]}
    assert mounts["/srv/cmrqc/users/{username}"]["subPath"] == "users/{username}"
    assert mounts["/srv/cmrqc/cohorts"]["readOnly"] is True
    hub = values["hub"]["config"]
    assert hub["JupyterHub"]["authenticator_class"] == "cmrqc_widgets.serve.hub.CMRQCAuthenticator"
    assert hub["JupyterHub"]["cookie_max_age_days"] == 3
    assert hub["CMRQCAuthenticator"]["data_root"] == "/srv/cmrqc"
    assert values["cull"]["enabled"] is True


def test_z2jh_reviewer_command_is_the_hubs():
    """The pods run the same standalone-proxy + Voilà command as `cmrqc hub`, flag for flag."""
    yaml = pytest.importorskip("yaml")
    from cmrqc_widgets.serve.voila import reviewer_command

    cmd = yaml.safe_load((CONFIG / "z2jh-values.yaml").read_text())["singleuser"]["cmd"]
    ours = reviewer_command("/user/{name}/")

    def flags(argv: list[str]) -> list[str]:
        return [a for a in argv if a.startswith("--") and "base_url" not in a]

    assert Path(cmd[0]).name == "jupyter-standaloneproxy" and Path(cmd[0]).is_absolute()
    assert cmd[cmd.index("--") + 1 :][1:3] == ["-m", "cmrqc_widgets.serve.app"]
    assert flags(cmd) == flags(ours)
    assert "--Voila.base_url={base_url}/" in cmd


def test_sigterm_stops_the_server_too(tmp_path):
    """Stopping `cmrqc serve` with SIGTERM (a service manager) stops the server it runs."""
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "server.pid"
    server = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    runner = (
        "import sys; from cmrqc_widgets.serve.voila import _run; "
        f"sys.exit(abs(_run([sys.executable, '-c', {server!r}], dict(__import__('os').environ))))"
    )
    process = subprocess.Popen([sys.executable, "-c", runner])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the server never started"
        time.sleep(0.05)
    server_pid = int(pid_file.read_text())
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)


def test_serve_prints_the_port_it_really_uses(tmp_path, monkeypatch, capsys):
    """With the asked port busy, `cmrqc serve` picks the next free one, says so, and Voilà may not move."""
    import socket

    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        args = parse(["serve", "--root", str(tmp_path), "--user", "bo", "--port", str(taken), "--no-browser"])
        argv, _ = prepare_serve(args)
    assert args.port != taken and f"--port={args.port}" in argv and "--Voila.port_retries=0" in argv
    assert f"Port {taken} is in use; serving on {args.port}" in capsys.readouterr().err


def test_wheel_ships_only_the_named_notebooks():
    """The wheel takes the named notebooks (lead, review, tutorial), never the whole notebooks/ folder."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    shipped = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    notebooks = sorted(source for source in shipped if source.startswith("notebooks"))
    assert notebooks == ["notebooks/lead.ipynb", "notebooks/review.ipynb", "notebooks/tutorial.ipynb"]
    assert all((REPO / source).is_file() for source in notebooks)


def test_only_hashed_static_files_are_cached_for_a_year():
    """Files whose URL names their content (?v=) may be cached a year; pages and other files may not."""
    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    from cmrqc_widgets.serve.app import HashedFilesCached

    def cache_control(uri: str, status: int = 200) -> str | None:
        start = RequestStartLine("GET", uri, "HTTP/1.1")
        request = HTTPServerRequest(start_line=start, headers=HTTPHeaders({"Host": "127.0.0.1"}))
        transform = HashedFilesCached(request)
        _, headers, _ = transform.transform_first_chunk(status, HTTPHeaders(), b"", True)
        return headers.get("Cache-Control")

    assert "immutable" in cache_control("/voila/labextensions/anywidget/static/2.js?v=3dbf81c0")
    assert "immutable" in cache_control("/user/alice/voila/templates/cmrqc/static/index.css?v=ee8d", 304)
    assert cache_control("/voila/labextensions/anywidget/static/2.js") is None
    assert cache_control("/?v=1") is None  # the dashboard page itself
    assert cache_control("/voila/labextensions/anywidget/static/2.js?v=3dbf81c0", 404) is None


def test_serve_lead_serves_the_lead_notebook_with_the_same_settings(tmp_path, monkeypatch):
    """`cmrqc serve --lead` runs the same Voilà command on lead.ipynb (preheated too)."""
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    common = ["--root", str(tmp_path), "--user", "lee", "--no-browser"]
    review, _ = prepare_serve(parse(["serve", *common]))
    lead, env = prepare_serve(parse(["serve", "--lead", *common]))
    assert lead[3] == str(REPO / "notebooks" / "lead.ipynb")
    assert lead[:3] + lead[4:] == review[:3] + review[4:] and env["CMRQC_USER"] == "lee"
    assert "--VoilaConfiguration.preheat_kernel=True" in lead
