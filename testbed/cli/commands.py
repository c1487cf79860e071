"""The testbed's ``lcmctl`` command groups: their usage, options and help, and which handler runs each.

This module is what ``lcmctl`` loads through the ``lcmctl.commands`` entry points to build its parser, so it
imports nothing heavy: each command's handler (``testbed/cli/<group>.py``, which imports the lab, the
simulator or the control plane) is named through ``deferred`` and imported only when that command runs.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from agent.kits.commands import Groups, deferred
from testbed import CHECKOUT
from testbed.lab.box import BOX_NAME

SAMPLES = CHECKOUT / "deploy" / "samples"
"""The objects the demo loads: a cluster, its release, three machines."""
NODE_KINDS = ("auto", "machines", "netns")
API_KINDS = ("sim", "kube")

DEMO = """``lcmctl demo``: the README's first command, the whole rollout on this machine.

The regional side (the API simulator, or with ``--api kube`` the real control plane of ``testbed.kube``, with
the CRDs, the samples of ``deploy/samples`` and the RBAC of ``deploy/rbac``; the scheduler, Mosquitto) and
three nodes, each running the real agent; the rollout is shown live until every LCMMachine is Ready, then the
swarm as its manager sees it. The nodes are nspawn machines that cloud-init turns into nodes (``--nodes
machines``: the agent installed from the lab's air-gapped mirror, systemd running it, Docker Engine from the
lab's apt repository), or, on a host that cannot run machines, network namespaces with their own dockerd and
the agent as a host process (``--nodes netns``); ``auto`` (the default) picks machines when it can and says
why when it cannot. ``testbed.lab.stack.stack`` is the composition (the end-to-end tests use the same one);
this module adds the API, the prerequisites check and the terminal. It installs nothing: ``./dev.sh demo``
does.

    lcmctl demo [--nodes auto|machines|netns] [--api sim|kube] [--once] [--port 6443]
                [--state-dir .state/demo] [--apt-mirror URL]
    lcmctl demo --down

Ctrl-C (or ``--once`` after the swarm is shown) takes everything down; ``--down`` does the same from
another shell. Every run starts from its own state (``testbed.lab.stack.runs``): a second run in the same
checkout, or one after a crashed or killed run, first removes what the previous one left. The time of each
stage (image, boot → registered, → all Ready, teardown) is printed separately.
"""

KUBE = """``lcmctl kube``: the real regional control plane (etcd, kube-apiserver, kube-controller-manager)
on this machine, with the project's CRDs installed, for people to try the agent, the scheduler and kubectl
against.

    lcmctl kube up [--state-dir .state/kube] [--host 127.0.0.1] [--port 0]
    lcmctl kube down [--state-dir .state/kube]
    lcmctl kube build

``up`` builds the binaries from ``testbed/kube`` on first use (saying so), starts the three components in the
background, waits until the API is ready and the CRDs are Established, then prints the admin kubeconfig's
path; ``down`` stops them. Logs are in STATE/logs.
"""

MACHINES = """``lcmctl machines``: systemd-nspawn machines that boot the real agent through cloud-init.

    lcmctl machines up [--count 2] [--control 1] [--state-dir .state/machines] [--once]
    lcmctl machines ls [--state-dir .state/machines]
    lcmctl machines journal NAME [--unit lcm-agent.service] [--lines 50]
    lcmctl machines down [NAME ...]

``up`` serves a regional API (the project's simulator) and the package mirror on the machines' bridge,
boots the machines and waits until every agent has registered; then it keeps serving until Ctrl-C, which
destroys the machines (``--once`` stops right after the wait). The admin kubeconfig is written to
``STATE/kubeconfig``. A machine that does not register is reported with the reason read from inside it
(cloud-init failed, the API refused the agent's token, …). ``down`` removes machines left by any run,
found on disk and by their network namespaces; it is safe to run at any time. docs/machines.md has the
details.
"""

VAGRANT = """``lcmctl box`` and ``lcmctl vagrant``: the Vagrant test VMs' box and their host-side regional
side.

    lcmctl box build [--apt-mirror URL]            # the libvirt box lcm/bookworm, built once and added
    lcmctl vagrant up --nodes node-1[,node-2…] [--controls 1] [--api-port 6443] [--mirror-port 8080]
    lcmctl vagrant serve …                         # the same in the foreground (what `up` starts)
    lcmctl vagrant status                          # the VMs' LCMMachines
    lcmctl vagrant down [--if-unused]

The project's Vagrantfile runs ``up`` before ``vagrant up`` and ``down --if-unused`` after ``vagrant
destroy``; nothing here needs to be typed by hand. ``up`` builds and adds the box if needed, then starts
``serve`` in the background unless it runs already, and returns once the VMs' seeds are written. ``serve``
makes the isolated libvirt network, serves the lab's mirrors and the project's API simulator on its bridge
address, loads ``deploy/vagrant`` (a small release: the prepare items), provisions one LCMMachine per VM,
writes each VM's NoCloud seed, and runs ``lcm-scheduler``, until SIGTERM. ``down`` stops it and removes the
network, the storage pool with the box's volume and the seeds; with ``--if-unused`` it does nothing while a
VM is still on the network (``vagrant destroy`` runs it once per VM). docs/machines.md has the details.
"""


def add_sim_commands(groups: Groups) -> None:
    sim = groups.add_parser("sim", help="the regional Kubernetes API simulator")
    commands = sim.add_subparsers(dest="command", required=True)

    srv = commands.add_parser("serve", help="serve the Kubernetes API until SIGTERM/SIGINT")
    srv.add_argument("--state-dir", type=Path, required=True, help="sqlite state, TLS files, admin token")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    srv.add_argument("--port", type=int, default=6443, help="port to listen on; 0 picks a free one")
    srv.add_argument("--kubeconfig", type=Path,
                     help="where to write the admin kubeconfig (default STATE/kubeconfig)")
    srv.add_argument("--load", type=Path, action="append", default=[], metavar="PATH",
                     help="YAML file or directory of objects to create at start (repeatable)")
    srv.add_argument("--crds", type=Path, action="append", default=[], metavar="PATH",
                     help="CRD manifests installed before serving (repeatable; default: the project's CRDs)")
    srv.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    srv.add_argument("--extra-host", action="append", default=[], metavar="HOST",
                     help="another name or address for the server certificate (repeatable)")
    srv.add_argument("--bookmark-interval", type=float, default=60.0, metavar="SECONDS",
                     help="how often watches that allow bookmarks get one (default %(default)s)")
    srv.set_defaults(func=deferred("testbed.cli.sim:serve"))

    fault = commands.add_parser("fault", help="inject a fault into a running simulator")
    fault.add_argument("--kubeconfig", help="the simulator's admin kubeconfig (default: $KUBECONFIG)")
    actions = fault.add_subparsers(dest="action", required=True)
    error = actions.add_parser("error", help="fail matching requests with an HTTP error")
    error.add_argument("--code", type=int, required=True, help="HTTP status, e.g. 500, 503, 429")
    error.add_argument("--retry-after", type=int, help="Retry-After seconds (429/503 default to 1)")
    latency = actions.add_parser("latency", help="delay matching requests")
    latency.add_argument("--ms", type=int, required=True, help="delay in milliseconds")
    for rule in (error, latency):
        rule.add_argument("--count", type=int, help="how many requests; default: until cleared")
        rule.add_argument("--probability", type=float, help="chance per matching request (default 1)")
        rule.add_argument("--verb", help="only this verb (get, list, watch, patch...)")
        rule.add_argument("--resource", help="only this resource, e.g. lcmmachines or lcmmachines/status")
        rule.add_argument("--path", help="only request paths matching this regular expression")
        rule.add_argument("--user", help="only this user, e.g. system:serviceaccount:NS:NAME")
    for name, text in (("drop-watches", "end every open watch stream now"),
                       ("compact", "drop the watch history: older resourceVersions get 410"),
                       ("clear", "remove every rule"), ("list", "show the rules")):
        actions.add_parser(name, help=text)
    fault.set_defaults(func=deferred("testbed.cli.sim:fault"))


def add_kube_commands(groups: Groups) -> None:
    kube = groups.add_parser("kube", help="the real control plane: etcd, kube-apiserver, controller manager",
                             description=KUBE, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = kube.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build if needed, start in the background, install the CRDs")
    down = commands.add_parser("down", help="stop a control plane started by `up`")
    for parser in (up, down):
        parser.add_argument("--state-dir", type=Path, default=Path(".state/kube"),
                            help="keys, etcd data, logs, kubeconfig (default %(default)s)")
    up.add_argument("--host", default="127.0.0.1", help="address kube-apiserver listens on")
    up.add_argument("--port", type=int, default=0, help="kube-apiserver's port (default: a free one)")
    up.set_defaults(func=deferred("testbed.cli.kube:up"))
    down.set_defaults(func=deferred("testbed.cli.kube:down"))
    build = commands.add_parser("build", help="build the binaries from testbed/kube (cached by digest)")
    build.set_defaults(func=deferred("testbed.cli.kube:build"))


def add_nodes_commands(groups: Groups) -> None:
    group = groups.add_parser("nodes", help="lab nodes: network namespaces with their own dockerd")
    commands = group.add_subparsers(dest="command", required=True)

    start = commands.add_parser("up", help="create nodes and start their dockerd")
    start.add_argument("names", nargs="+", help="node names (hostnames)")
    start.add_argument("--prefix", default="lcmlab", help="naming prefix of the lab (default %(default)s)")
    start.add_argument("--subnet", type=ipaddress.IPv4Network,
                       help="private subnet for the bridge (default: a free /24 in 10.77.0.0/16)")
    start.add_argument("--state-dir", type=Path, help="node directories (default: a new one under /tmp)")
    start.set_defaults(func=deferred("testbed.cli.nodes:up"))

    listing = commands.add_parser("ls", help="show the labs on this host")
    listing.set_defaults(func=deferred("testbed.cli.nodes:ls"))

    stop = commands.add_parser("down", help="tear a lab down: processes, mounts, namespaces, links, dirs")
    which = stop.add_mutually_exclusive_group()
    which.add_argument("--prefix", default="lcmlab", help="naming prefix of the lab (default %(default)s)")
    which.add_argument("--all", action="store_true", help="every lab registered on this host")
    stop.set_defaults(func=deferred("testbed.cli.nodes:down"))


def add_machines_commands(groups: Groups) -> None:
    machines = groups.add_parser("machines", help="nspawn machines booting the agent with cloud-init",
                                 description=MACHINES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = machines.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="boot machines and wait for their agents to register")
    up.add_argument("--count", type=int, default=2, help="how many machines (default %(default)s)")
    up.add_argument("--control", type=int, default=1, help="how many of them are control machines")
    up.add_argument("--prefix", default="vm", help="machine names are PREFIX-1, PREFIX-2, …")
    up.add_argument("--namespace", default="lcm-lab", help="namespace of the LCMMachines")
    up.add_argument("--api-port", type=int, default=6443, help="port of the API on the bridge (0: any)")
    up.add_argument("--mirror-port", type=int, default=8080, help="port of the package mirror (0: any)")
    up.add_argument("--apt-mirror", default="", metavar="URL",
                    help="Debian mirror to build the image and the apt repository from (default: the host's "
                         "apt sources)")
    up.add_argument("--once", action="store_true", help="destroy the machines after the wait and exit")
    down = commands.add_parser("down", help="destroy machines (all when none is named) and the bridge")
    down.add_argument("names", nargs="*", metavar="NAME")
    ls = commands.add_parser("ls", help="list machines, their LCMMachine state, and why one is stuck")
    journal = commands.add_parser("journal", help="a unit's journal inside a machine")
    journal.add_argument("name", metavar="NAME")
    journal.add_argument("--unit", default="lcm-agent.service", help="default %(default)s")
    journal.add_argument("--lines", type=int, help="only the last N lines")
    for command in (up, ls):
        command.add_argument("--state-dir", type=Path, default=Path(".state/machines"),
                             help="API state, kubeconfig and mirror files of `up` (default %(default)s)")
    machines.set_defaults(func=deferred("testbed.cli.machines:dispatch"))


def add_mirror_commands(groups: Groups) -> None:
    group = groups.add_parser("mirror", help="the agent's wheel and the index a release publishes")
    commands = group.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index", help="the agent's wheel and a PEP 503 index of its dependencies")
    index.add_argument("--dest", type=Path, required=True, help="directory to fill: files/ and simple/")
    index.add_argument("--project", type=Path, default=CHECKOUT, help="lcm-agent source checkout")
    index.add_argument("--cache-dir", type=Path,
                       help="wheels kept between runs (default: the lab's cache, under /var/cache/lcm-lab)")
    index.set_defaults(func=deferred("testbed.cli.mirror:index"))


def add_demo_commands(groups: Groups) -> None:
    demo = groups.add_parser("demo", help="the whole rollout here: API, scheduler, broker, 3 nodes",
                             description=DEMO, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--state-dir", type=Path, default=Path(".state/demo"),
                      help="API state, kubeconfig, configs, logs, nodes (default %(default)s)")
    demo.add_argument("--port", type=int, default=6443, help="API port (default %(default)s; 0: any free)")
    demo.add_argument("--samples", type=Path, default=SAMPLES,
                      help="objects to load (default: deploy/samples)")
    demo.add_argument("--nodes", choices=NODE_KINDS, default="auto",
                      help="nspawn machines, network-namespace nodes, or machines when this host can run "
                           "them (default %(default)s)")
    demo.add_argument("--prefix", default="lcmdemo", help="naming prefix of netns nodes (namespaces, links)")
    demo.add_argument("--api", choices=API_KINDS, default="sim",
                      help="the embedded API simulator (fast), or the real control plane (etcd, "
                           "kube-apiserver, controller manager; built on first use); default %(default)s")
    demo.add_argument("--apt-mirror", default="", metavar="URL",
                      help="machines: the Debian mirror the image and the apt repository come from "
                           "(default: the host's apt sources)")
    demo.add_argument("--once", action="store_true", help="exit (and clean up) once the swarm is shown")
    demo.add_argument("--down", action="store_true", help="remove everything the demo made, then exit")
    demo.set_defaults(func=deferred("testbed.cli.demo:run_demo"))


def add_vagrant_commands(groups: Groups) -> None:
    box = groups.add_parser("box", help="the Vagrant box built from the machine image")
    box_commands = box.add_subparsers(dest="command", required=True)
    build = box_commands.add_parser("build", help=f"build (once) and add the libvirt box {BOX_NAME}")
    build.add_argument("--apt-mirror", default="", metavar="URL",
                       help="Debian mirror for the image and the VM's packages (default: the host's apt "
                            "sources)")
    build.set_defaults(func=deferred("testbed.cli.vagrant:box_build"))

    vagrant = groups.add_parser("vagrant", help="the Vagrant VMs' host-side regional side (the Vagrantfile's "
                                "triggers run it)", description=VAGRANT,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = vagrant.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="box, network, API, mirrors, scheduler, seeds; in the background")
    serve = commands.add_parser("serve", help="what `up` starts, in the foreground until SIGTERM")
    for command in (up, serve):
        command.add_argument("--nodes", required=True, help="the VMs' names, comma-separated")
        command.add_argument("--controls", type=int, default=1,
                             help="how many of them (the first ones) are control machines")
        command.add_argument("--api-port", type=int, default=6443)
        command.add_argument("--mirror-port", type=int, default=8080)
        command.add_argument("--apt-mirror", default="", metavar="URL")
    up.set_defaults(func=deferred("testbed.cli.vagrant:up"))
    serve.set_defaults(func=deferred("testbed.cli.vagrant:serve"))
    status = commands.add_parser("status", help="the VMs' LCMMachines")
    status.set_defaults(func=deferred("testbed.cli.vagrant:status"))
    down = commands.add_parser("down", help="stop the regional side; remove network, pool, volumes, seeds")
    down.add_argument("--if-unused", action="store_true", help="do nothing while a VM is on the network")
    down.set_defaults(func=deferred("testbed.cli.vagrant:down"))
