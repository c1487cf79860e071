"""``lcmctl sim serve`` as an operator runs it: loads the samples, keeps objects across restarts, and stops
cleanly on SIGTERM/SIGINT, ending open watches instead of hanging on them."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config, watch

from regional.cli.ctl import main
from testbed.sim.testing import LCM_GROUP, LCM_VERSION, MACHINES

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(state: Path, kubeconfig: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        LCMCTL, "sim", "serve", "--port", str(free_port()), "--state-dir", str(state),
        "--kubeconfig", str(kubeconfig), *extra, stderr=asyncio.subprocess.PIPE)


async def connect(kubeconfig: Path, proc: asyncio.subprocess.Process) -> client.ApiClient:
    """A client once the simulator answers (it writes its kubeconfig before serving the samples)."""
    for _ in range(200):
        assert proc.returncode is None, "the simulator exited early"
        if await asyncio.to_thread(kubeconfig.exists):
            cfg = client.Configuration()
            await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
            api = client.ApiClient(cfg)
            try:
                await list_machines(api)
                return api
            except (OSError, client.ApiException):
                await api.close()
        await asyncio.sleep(0.1)
    raise TimeoutError("the simulator did not come up")


async def list_machines(api: client.ApiClient) -> list[str]:
    machines = await client.CustomObjectsApi(api).list_cluster_custom_object(LCM_GROUP, LCM_VERSION, MACHINES)
    return sorted(m["metadata"]["name"] for m in machines["items"])


async def stop(proc: asyncio.subprocess.Process, sig: signal.Signals) -> int:
    proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert b"Traceback" not in err
    return int(proc.returncode or 0)


async def test_serve_loads_samples_keeps_state_and_stops_on_signals(tmp_path: Path) -> None:
    state, kubeconfig = tmp_path / "state", tmp_path / "kubeconfig"
    proc = await start(state, kubeconfig, "--load", str(SAMPLES))
    async with await connect(kubeconfig, proc) as api:
        loaded = await list_machines(api)
        assert loaded
        kept = client.V1Namespace(metadata=client.V1ObjectMeta(name="kept"))
        await client.CoreV1Api(api).create_namespace(kept)
        stream = watch.Watch().stream(client.CoreV1Api(api).list_namespace, timeout_seconds=60)
        async with stream:
            await asyncio.wait_for(anext(stream), 5)
            assert await stop(proc, signal.SIGTERM) == 0
            await asyncio.wait_for(_drain(stream), 5)  # the stream ends: the server closed it

    proc = await start(state, kubeconfig)
    async with await connect(kubeconfig, proc) as api:
        assert await list_machines(api) == loaded
        assert (await client.CoreV1Api(api).read_namespace("kept")).metadata.name == "kept"
    assert await stop(proc, signal.SIGINT) == 0


async def _drain(stream: watch.Watch) -> None:
    async for _event in stream:
        pass


async def test_serve_reports_an_unloadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: example.com/v1\nkind: Unknown\nmetadata: {name: x}\n")
    proc = await start(tmp_path / "state", tmp_path / "kubeconfig", "--load", str(bad))
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert b'cannot load Unknown "x": no matches for kind "Unknown"' in err


@pytest.mark.parametrize("argv", [["sim"], ["sim", "fault"], ["nothing"], ["sim", "serve"]])
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "usage: lcmctl" in capsys.readouterr().err
